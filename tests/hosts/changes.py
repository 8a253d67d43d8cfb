"""Host: threads whose records change on command, for the listing caches.

- parked: blocks on an Event, ignoring its stop flag; `rename NAME` renames it
  (prints RENAMED), `end` lets it return (prints ENDED once it has).
- mover: waits on an Event; `move` sends it on to a queue.Queue.get (prints
  MOVED just before it blocks there).
- stuck: blocks in a lock's acquire (a C call a forced stop must wait out).
Exits on EOF.
"""

import json
import queue
import sys
import threading

from _hostkit import say

import threadctl

release, go_on, never = threading.Event(), threading.Event(), threading.Lock()
never.acquire()
inbox: queue.Queue[object] = queue.Queue()


def stuck() -> None:
    never.acquire()


def mover() -> None:
    go_on.wait()
    say("MOVED")
    inbox.get()


threads = {
    "parked": threading.Thread(target=release.wait, name="parked", daemon=True),
    "mover": threading.Thread(target=mover, name="mover", daemon=True),
    "stuck": threading.Thread(target=stuck, name="stuck", daemon=True),
}
server = threadctl.install()
for thread in threads.values():
    thread.start()
say(
    "READY "
    + json.dumps(
        {
            "socket": str(server.socket_path),
            "threads": {
                name: {"ident": t.ident, "native_id": t.native_id} for name, t in threads.items()
            },
        }
    )
)
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "rename":
        threads["parked"].name = argument
        say("RENAMED")
    elif command == "end":
        release.set()
        threads["parked"].join()
        say("ENDED")
    elif command == "move":
        go_on.set()
server.close()
