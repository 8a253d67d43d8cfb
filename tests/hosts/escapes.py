"""Host: text that would act on a terminal, in every field a listing shows.

argv[1] is the hostile text. A thread carries it in its name, and runs a
function whose name and file name carry it too (so stacks show it). The
thread waits in threadctl.sleep() until stopped, then prints EXITED.
Exits on stdin EOF.
"""

import json
import sys
import threading

from _hostkit import say

import threadctl

hostile = sys.argv[1]
server = threadctl.install()


def waiting() -> None:
    while not threadctl.sleep(60):
        pass


# The same function, as if defined in a file and under a name of that text.
names = {"co_name": hostile, **({"co_qualname": hostile} if sys.version_info >= (3, 11) else {})}
code = waiting.__code__.replace(co_filename=f"/srv/{hostile}.py", **names)
target = type(waiting)(code, waiting.__globals__, hostile)


def run() -> None:
    target()
    say("EXITED")


thread = threading.Thread(target=run, name=hostile)
thread.start()
say("READY " + json.dumps({"socket": str(server.socket_path), "tid": thread.native_id}))
sys.stdin.read()
if thread.is_alive():
    threadctl.stop(thread.ident, wait=10)
server.close()
