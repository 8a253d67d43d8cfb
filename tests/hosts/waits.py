"""Host: one thread blocked in each stop-aware wait, plus a socket reader.

sleeper   threadctl.sleep(3600)
eventer   threadctl.wait(event) on an event nobody sets
conder    threadctl.wait_for(condition, predicate) that never becomes true
getter    threadctl.get(queue) on an empty queue
reader    sock.recv() on a socket pair, with threadctl.on_stop(sock.close)
raiser    threadctl.get(queue, raise_on_stop=True)

Each prints `RETURNED <name> <value>` when its wait returns and
`FINALLY <name>` when it ends.
"""

import json
import queue
import socket
import sys
import threading

from _hostkit import say

import threadctl

never = threading.Event()
condition = threading.Condition()
jobs: queue.Queue[int] = queue.Queue()
ready: dict[str, threading.Event] = {}


def sleeper() -> object:
    return threadctl.sleep(3600)


def eventer() -> object:
    return threadctl.wait(never)


def conder() -> object:
    with condition:
        return threadctl.wait_for(condition, lambda: False)


def getter() -> object:
    return threadctl.get(jobs)


def raiser() -> object:
    return threadctl.get(jobs, raise_on_stop=True)


def reader() -> object:
    ours, theirs = socket.socketpair()
    keep.append(theirs)
    with threadctl.on_stop(lambda: ours.shutdown(socket.SHUT_RDWR)):
        data = ours.recv(1024)  # blocks in C: only the hook can wake it
    ours.close()
    return data


keep: list[socket.socket] = []


def run(name: str) -> None:
    threadctl.stop_requested()  # registered: shows as cooperative
    ready[name].set()
    try:
        say(f"RETURNED {name} {globals()[name]()!r}")
    finally:
        say(f"FINALLY {name}")


server = threadctl.install()
threads = {}
for name in sys.argv[1:]:
    ready[name] = threading.Event()
    threads[name] = threading.Thread(target=run, args=(name,), name=name, daemon=True)
    threads[name].start()
for event in ready.values():
    event.wait()
info = {name: {"ident": t.ident, "native_id": t.native_id} for name, t in threads.items()}
say("READY " + json.dumps({"socket": str(server.socket_path), "threads": info}))
sys.stdin.read()
server.close()
