"""Host: threads blocked in calls whose labels once named an argument.

Each thread parks for good in one call written the way real code writes it
(constant, attribute or environment arguments, a call over several lines,
a method on a chained call, keyword arguments, a callable looked up by key,
a function in a user's own file named queue.py, waits of the standard
library and of threadctl); tests/test_labels.py checks that the listing names
the function being called. With `--plain` the program never imports
threadctl (for one-shot listings) and has no threadctl waits. Prints `READY <json>`
(the socket, unless --plain) once every thread is started; exits on stdin EOF.
"""

import importlib.util
import json
import os
import queue
import socket
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

from _hostkit import say

INTERVAL = 3600.0
LONG = 3600.0
BUFSIZE = 1024

held = threading.Lock()
held.acquire()
jobs: queue.Queue[int] = queue.Queue()
ours, theirs = socket.socketpair()
readable, unread = socket.socketpair()
handlers = {"nap": time.sleep}


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lookalike = _load("lookalike_queue", Path(__file__).parent / "lookalike" / "queue.py")


class Napper:
    interval = INTERVAL

    def run(self) -> None:
        while True:
            time.sleep(self.interval)


class Locks:
    """Hands out locks that are already held, by name."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock_for(self, name: str) -> threading.Lock:
        with self._guard:
            if name not in self._locks:
                self._locks[name] = threading.Lock()
                self._locks[name].acquire()
            return self._locks[name]


registry = Locks()


def constant() -> None:
    while True:
        time.sleep(INTERVAL)


def environment() -> None:
    while True:
        time.sleep(float(os.environ.get("THREADCTL_TEST_NAP", "3600")))


def multiline() -> None:
    while True:
        time.sleep(
            abs(
                INTERVAL,
            ),
        )


def chained() -> None:
    registry.lock_for("chained").acquire(timeout=LONG)


def chained_multiline() -> None:
    (
        registry
        .lock_for("chained_multiline")
        .acquire(timeout=LONG)
    )  # fmt: skip


def receiver() -> None:
    ours.recv(BUFSIZE)


def acquirer() -> None:
    held.acquire(timeout=LONG)


def entering() -> None:
    with held:
        pass


def dispatcher() -> None:
    handlers["nap"](INTERVAL)


def queued() -> None:
    jobs.get()


def lookalike_get() -> None:
    lookalike.get(INTERVAL)


def file_reader() -> None:
    readable.makefile("rb").readline()  # in socket.py's SocketIO.readinto


def cooperative_sleep() -> None:
    threadctl.sleep(INTERVAL)


def cooperative_get() -> None:
    threadctl.get(jobs)


TARGETS = {
    "constant": constant,
    "attribute": Napper().run,
    "environment": environment,
    "multiline": multiline,
    "chained": chained,
    "chained_multiline": chained_multiline,
    "receiver": receiver,
    "acquirer": acquirer,
    "entering": entering,
    "dispatcher": dispatcher,
    "queued": queued,
    "lookalike_get": lookalike_get,
    "file_reader": file_reader,
}

ready = {}
if "--plain" not in sys.argv:
    import threadctl

    server = threadctl.install()
    ready["socket"] = str(server.socket_path)
    TARGETS.update(cooperative_sleep=cooperative_sleep, cooperative_get=cooperative_get)
for name, target in TARGETS.items():
    threading.Thread(target=target, name=name, daemon=True).start()
say("READY " + json.dumps(ready))
for _line in sys.stdin:
    pass
