"""Host: an ordinary threaded program, launched with `python -m threadctl
--stop-on-signals ...`. argv names its non-daemon workers:

coop      loops on threadctl.sleep(0.5) until a stop is requested
stubborn  a pure-Python busy loop that never checks its flag

The main thread joins the workers, as such programs do. Each worker prints
`FINALLY <name>` when it ends. On stdin EOF (test cleanup) every worker is
stopped, by force if need be.
"""

import json
import signal
import sys
import threading

from _hostkit import say

import threadctl


def coop() -> None:
    while not threadctl.sleep(0.5):
        pass


def stubborn() -> None:
    n = 0
    while True:
        n = (n * 7 + 3) % 1_000_003


def run(kind: str) -> None:
    try:
        globals()[kind]()
    finally:
        say(f"FINALLY {threading.current_thread().name}")


workers = [
    threading.Thread(target=run, args=(kind,), name=f"{kind}-{i}")
    for i, kind in enumerate(sys.argv[1:])
]
for worker in workers:
    worker.start()
handlers = {s.name: str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM)}
say("READY " + json.dumps({"workers": [w.name for w in workers], "handlers": handlers}))


def end_on_eof() -> None:
    sys.stdin.read()
    threadctl.stop_all(grace=5, force=True)


threading.Thread(target=end_on_eof, name="eof-watcher", daemon=True).start()
for worker in workers:
    worker.join()
say("MAIN DONE")
