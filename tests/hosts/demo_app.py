"""Demo host: a small service with a few realistic worker threads.

It does not call threadctl.install(): `make demo` launches it with
`python -m threadctl`. Its workers use threadctl's stop-aware helpers, except
the legacy watchdog, which (like much real code) never checks a stop flag.
Ctrl-C (SIGINT) stops the workers cooperatively and exits cleanly.
"""

from __future__ import annotations

import queue
import threading
import time

import threadctl

jobs: queue.Queue[int] = queue.Queue()


def poller() -> None:
    """Polls an upstream every 2 s (simulated) and queues the work it finds."""
    n = 0
    while not threadctl.sleep(2.0):
        n += 1
        jobs.put(n)


def indexer() -> None:
    """Takes jobs off the queue and indexes them, checking for a stop between jobs."""
    while not threadctl.stop_requested():
        try:
            job = jobs.get(timeout=0.2)
        except queue.Empty:
            continue
        sum(i * i for i in range(20_000 + job))  # the "indexing"


def flusher() -> None:
    """Flushes metrics every 5 s."""
    while not threadctl.sleep(5.0):
        pass


def legacy_watchdog(stop: threading.Event) -> None:
    """Old code that never looks at threadctl's flag: it waits on its own event."""
    while not stop.wait(1.0):
        pass


def main() -> None:
    watchdog_stop = threading.Event()
    workers = [
        threading.Thread(target=poller, name="upstream-poller"),
        threading.Thread(target=indexer, name="indexer"),
        threading.Thread(target=flusher, name="metrics-flusher"),
        threading.Thread(target=legacy_watchdog, args=(watchdog_stop,), name="legacy-watchdog"),
    ]
    for worker in workers:
        worker.start()
    try:
        while any(w.is_alive() for w in workers):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for worker in workers:
        if worker.is_alive() and worker.name != "legacy-watchdog":
            threadctl.stop(worker.ident, reason="shutting down", wait=10)
    watchdog_stop.set()
    for worker in workers:
        worker.join()
    print("demo app: all workers stopped, exiting", flush=True)


if __name__ == "__main__":
    main()
