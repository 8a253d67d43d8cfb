"""Host: a program that never imports threadctl (attach and one-shot tests).

- spinner: busy in pure Python, in `with lock:`, with a `finally` that prints.
- sleeper: sleeps in a loop (time.sleep(0.05)).
- the main thread blocks on a lock that is never released.

Prints `READY <json>` with each thread's ident and native id. Runs on any
CPython 3.10+ with nothing but the standard library (tests start it with
other versions). Audit records that reach the `threadctl.audit` logger are
printed as `AUDIT <json>`. Exits on stdin EOF. With `--hold-gil SECONDS`, the
command `hold` makes the sleeper call libc sleep() through ctypes.PyDLL, which
keeps the GIL (prints HOLDING, then RELEASED); `lock?` prints whether the
spinner's lock is free. `--import MODULE` imports MODULE first.
"""

import ctypes
import importlib
import json
import logging
import os
import sys
import threading
import time


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class PrintAudit(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        say("AUDIT " + json.dumps(getattr(record, "threadctl_audit", {}), default=str))


audit = logging.getLogger("threadctl.audit")
audit.addHandler(PrintAudit())
audit.setLevel(logging.INFO)
audit.propagate = False

if "--import" in sys.argv:
    importlib.import_module(sys.argv[sys.argv.index("--import") + 1])

lock = threading.Lock()
forever = threading.Lock()
forever.acquire()
hold = threading.Event()
started = {"spinner": threading.Event(), "sleeper": threading.Event()}


def body(n: int) -> int:
    return (n * 7 + 3) % 1_000_003


def spinner() -> None:
    n = 0
    try:
        with lock:
            started["spinner"].set()
            while True:
                n = body(n)
    finally:
        say("FINALLY spinner")


def sleeper() -> None:
    started["sleeper"].set()
    while True:
        time.sleep(0.05)
        if hold.is_set():
            hold.clear()
            say("HOLDING")
            ctypes.PyDLL(None).sleep(int(sys.argv[sys.argv.index("--hold-gil") + 1]))
            say("RELEASED")


def commands() -> None:
    for line in sys.stdin:
        if line.strip() == "hold":
            hold.set()
        elif line.strip() == "lock?":
            took = lock.acquire(timeout=0.5)
            say("LOCK " + ("acquired" if took else "busy"))
            if took:
                lock.release()
    os._exit(0)


threads = [
    threading.Thread(target=spinner, name="spinner", daemon=True),
    threading.Thread(target=sleeper, name="sleeper", daemon=True),
]
for thread in threads:
    thread.start()
for event in started.values():
    event.wait()
threading.Thread(target=commands, name="commands", daemon=True).start()
ready = {
    t.name: {"ident": t.ident, "native_id": t.native_id}
    for t in [*threads, threading.main_thread()]
}
say("READY " + json.dumps({"threads": ready, "version": list(sys.version_info[:2])}))
forever.acquire()
