"""Host: a population of threads that a supervisor keeps full, for property
tests that throw arbitrary requests at a live server.

coop-N      wait in threadctl.sleep() until stopped, then exit; the supervisor
            starts a new one in their place
stubborn-N  block on an Event forever (from their own function: a thread
            running only standard-library code cannot be forced), never
            looking at their stop flag
supervisor  restarts exited coop threads; ignores its stop flag, survives a
            forced stop (catches it and clears its flag)

The main thread reads stdin until EOF (a forced stop of it stays pending there).
"""

import itertools
import json
import queue
import sys
import threading

from _hostkit import say

import threadctl

COOPERATIVE = 3
STUBBORN = 3

server = threadctl.install()
exited: queue.Queue[str] = queue.Queue()
never = threading.Event()
serial = itertools.count()


def cooperative() -> None:
    try:
        while not threadctl.sleep(60):
            pass
    finally:
        exited.put(threading.current_thread().name)


def stubborn() -> None:
    never.wait()


def start_cooperative() -> None:
    threading.Thread(target=cooperative, name=f"coop-{next(serial)}", daemon=True).start()


def supervise() -> None:
    while True:
        try:
            exited.get()
            start_cooperative()
        except threadctl.ThreadStopped:  # a forced stop: shrug it off, like a supervisor
            threadctl.clear_stop()


for _ in range(COOPERATIVE):
    start_cooperative()
for i in range(STUBBORN):
    threading.Thread(target=stubborn, name=f"stubborn-{i}", daemon=True).start()
threading.Thread(target=supervise, name="supervisor", daemon=True).start()
say("READY " + json.dumps({"socket": str(server.socket_path)}))
sys.stdin.read()
server.close()
