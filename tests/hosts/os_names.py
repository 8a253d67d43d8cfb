"""Host: named threads, for the kernel thread names `top -H` shows.

argv: `all` installs with name_os_threads=True, `own` without.
Threads started before install: `worker-1`, `a-name-longer-than-15-bytes`,
`ünïcödé-名前`; the command `spawn NAME` starts one more after install
(prints `SPAWNED NAME`). `READY <json>` gives each thread's ident and TID.
Exits on stdin EOF.
"""

import json
import sys
import threading

from _hostkit import say

import threadctl

never = threading.Event()


def start(name: str) -> threading.Thread:
    thread = threading.Thread(target=never.wait, name=name, daemon=True)
    thread.start()
    return thread


threads = [start(name) for name in ("worker-1", "a-name-longer-than-15-bytes", "ünïcödé-名前")]
server = threadctl.install(name_os_threads=sys.argv[1] == "all")
listing = {t.name: {"ident": t.ident, "native_id": t.native_id} for t in threads}
say("READY " + json.dumps({"socket": str(server.socket_path), "threads": listing}))
for line in sys.stdin:
    command, _, name = line.strip().partition(" ")
    if command == "spawn":
        thread = start(name)
        say(f"SPAWNED {name} {thread.native_id}")
server.close()
