"""Host: a server plus cooperative workers, a stubborn one, and a busy one.

- coop-1, coop-2: wait in threadctl.sleep() until stopped, then print EXITED.
- stubborn: never looks at its stop flag (blocks on an Event until the host ends).
- Reads commands on stdin; exits on EOF.
"""

import json
import sys
import threading

from _hostkit import say

import threadctl

release = threading.Event()
registered = {"coop-1": threading.Event(), "coop-2": threading.Event()}


def cooperative() -> None:
    threadctl.stop_requested()  # the first call marks the thread cooperative
    registered[threading.current_thread().name].set()
    while not threadctl.sleep(60):
        pass
    say(f"EXITED {threading.current_thread().name}")


def stubborn() -> None:
    release.wait()


server = threadctl.install()
started = [
    threading.Thread(target=cooperative, name="coop-1"),
    threading.Thread(target=cooperative, name="coop-2"),
    threading.Thread(target=stubborn, name="stubborn", daemon=True),
]
for thread in started:
    thread.start()
for event in registered.values():
    event.wait()
threads = {
    t.name: {"ident": t.ident, "native_id": t.native_id}
    for t in [*started, threading.main_thread()]
}
say("READY " + json.dumps({"socket": str(server.socket_path), "threads": threads}))

for line in sys.stdin:
    command = line.strip()
    if command == "close":
        server.close()
        say("CLOSED")
release.set()
for thread in started:
    if thread.name.startswith("coop") and thread.is_alive():
        threadctl.stop(thread.ident, reason="host exiting", wait=10)
server.close()
