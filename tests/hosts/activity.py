"""Host: threads doing recognisable things, for the operator's views.

burner    pure-Python busy loop           sleeper   time.sleep() in a loop
queued    queue.Queue.get() forever       locked    lock.acquire() on a held lock
reader    sock.recv() on a silent socket  evented   Event.wait() forever
plus one thread started with _thread that never touches `threading` (it
sleeps in time.sleep), and commands: `spawn NAME` starts a thread that waits
until `end NAME`.
"""

import _thread
import json
import queue
import socket
import sys
import threading
import time

from _hostkit import say

import threadctl

forever = threading.Event()
held = threading.Lock()
held.acquire()
jobs: queue.Queue[int] = queue.Queue()
ours, theirs = socket.socketpair()


def burner() -> None:
    n = 0
    while True:
        n = (n * 7 + 3) % 1_000_003


def sleeper() -> None:
    while True:
        time.sleep(60)


def queued() -> None:
    jobs.get()


def locked() -> None:
    held.acquire()


def reader() -> None:
    ours.recv(1024)


def evented() -> None:
    forever.wait()


def foreign() -> None:
    while True:
        time.sleep(60)


server = threadctl.install()
for target in (burner, sleeper, queued, locked, reader, evented):
    threading.Thread(target=target, name=target.__name__, daemon=True).start()
_thread.start_new_thread(foreign, ())
say("READY " + json.dumps({"socket": str(server.socket_path)}))

spawned: dict[str, threading.Event] = {}
for line in sys.stdin:
    command, _, name = line.strip().partition(" ")
    if command == "spawn":
        spawned[name] = threading.Event()
        threading.Thread(target=spawned[name].wait, name=name, daemon=True).start()
        say(f"SPAWNED {name}")
    elif command == "end":
        spawned.pop(name).set()
        say(f"ENDED {name}")
server.close()
