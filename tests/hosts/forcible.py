"""Host: threads for forced-stop tests. argv names which ones to start.

spinner    busy pure-Python loop holding `lock` through `with`
swallower  busy loop wrapped in `except Exception: pass`
sleeper    prints SLEEPING, then time.sleep(3)
critical   enters threadctl.critical(), waits for the `leave` command inside
coop       waits in threadctl.sleep() until stopped
catcher    twice: print SLEEPING catcher, time.sleep(2), catching ThreadStopped
gatherer   takes batches of two items from `items` in a list comprehension

Every thread prints `FINALLY <name>` from its finally block. Commands on
stdin: `leave` (lets `critical` leave its section), `lock?` (prints whether
`lock` can be taken), `feed` (puts two items on `items`). Audit records are
printed as `AUDIT <json>`.
"""

import json
import logging
import queue
import sys
import threading
import time

from _hostkit import say

import threadctl

lock = threading.Lock()
items: queue.Queue[int] = queue.Queue()
leave = threading.Event()
started: dict[str, threading.Event] = {}


class PrintAudit(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        say("AUDIT " + json.dumps(record.threadctl_audit))


audit = logging.getLogger("threadctl.audit")
audit.addHandler(PrintAudit())
audit.setLevel(logging.INFO)
audit.propagate = False


def body(n: int) -> int:
    return (n * 7 + 3) % 1_000_003


def spinner() -> None:
    n = 0
    with lock:
        started["spinner"].set()
        while True:
            n = body(n)


def swallower() -> None:
    n = 0
    started["swallower"].set()
    while True:
        try:
            n = body(n)
        except Exception:  # swallows every error; must not swallow a stop
            n = 0


def sleeper() -> None:
    started["sleeper"].set()
    say("SLEEPING sleeper")
    time.sleep(3)
    say("WOKE sleeper")


def critical() -> None:
    with threadctl.critical():
        started["critical"].set()
        leave.wait()
        say("LEAVING critical")
    say("AFTER critical")


def coop() -> None:
    threadctl.stop_requested()
    started["coop"].set()
    while not threadctl.sleep(60):
        pass
    say("EXITED coop")


def catcher() -> None:
    started["catcher"].set()
    caught = 0
    for _ in range(2):
        try:
            say("SLEEPING catcher")
            time.sleep(2)
        except threadctl.ThreadStopped:
            caught += 1
            say("CAUGHT catcher")
    say(f"DONE catcher caught={caught}")


def gatherer() -> None:
    started["gatherer"].set()
    while True:
        # On CPython 3.12 and later the comprehension is inlined, under an
        # exception handler of its own (that restores `_`, then re-raises).
        batch = [items.get() for _ in range(2)]
        say(f"GATHERED {len(batch)}")


def run(name: str) -> None:
    try:
        globals()[name]()
    finally:
        say(f"FINALLY {name}")


server = threadctl.install()
threads = {}
for name in sys.argv[1:]:
    started[name] = threading.Event()
    threads[name] = threading.Thread(target=run, args=(name,), name=name, daemon=True)
    threads[name].start()
for event in started.values():
    event.wait()
ready = {
    name: {"ident": t.ident, "native_id": t.native_id}
    for name, t in [*threads.items(), ("MainThread", threading.main_thread())]
}
say("READY " + json.dumps({"socket": str(server.socket_path), "threads": ready}))

for line in sys.stdin:
    command = line.strip()
    if command == "leave":
        leave.set()
    elif command == "lock?":
        took = lock.acquire(timeout=5)
        say("LOCK " + ("acquired" if took else "busy"))
        if took:
            lock.release()
    elif command == "feed":
        items.put(1)
        items.put(2)
server.close()
