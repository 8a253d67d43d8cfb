"""Host: the README's "Writing threads that stop well" example, run as
written: its code block is read from README.md and executed, then each of
its functions runs in a thread of its own name (poller, worker, reader),
with `poll` and `handle` supplied here. Prints `ENDED <name>` when one
returns, and `READY <json>` with each thread's TID. Exits on stdin EOF.
"""

import json
import queue
import socket
import sys
import threading
from pathlib import Path

from _hostkit import say

import threadctl

readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
example = next(
    block.split("```", 1)[0]
    for block in readme.split("```python\n")[1:]
    if "def reader(" in block and "def poller(" in block
)
namespace = {"__name__": "readme_example", "poll": lambda: None, "handle": print}
exec(compile(example, "README.md", "exec"), namespace)  # the README's own code

server = threadctl.install()
jobs: queue.Queue[int] = queue.Queue()
ours, theirs = socket.socketpair()
# `theirs` stays open and silent: the reader blocks in recv until stopped.
arguments = {"poller": (), "worker": (jobs,), "reader": (ours,)}


def run(name: str) -> None:
    namespace[name](*arguments[name])
    say(f"ENDED {name}")


threads = [threading.Thread(target=run, args=(name,), name=name, daemon=True) for name in arguments]
for thread in threads:
    thread.start()
tids = {t.name: {"native_id": t.native_id} for t in threads}
say("READY " + json.dumps({"socket": str(server.socket_path), "threads": tids}))
sys.stdin.read()
theirs.close()
server.close()
