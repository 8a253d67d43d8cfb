"""A minimal executor for grpc.server whose workers are protected daemon threads.

Why not concurrent.futures.ThreadPoolExecutor: its workers are joined at
interpreter exit before ordinary atexit handlers run, so one RPC handler still
waiting (a `stop --wait`) would hold up the host's exit. The control plane must
never be what keeps a process alive. These workers are daemon threads, named
`threadctl-rpc-N` (visible as such in listings and, at OS level, in `top
-H`), and protected before they start (`start`, _os_names.start_own), so no
stop request can ever reach them.

A few workers start with the pool: from CPython 3.12 on, no thread can be
started once the interpreter is shutting down (after an uncaught
KeyboardInterrupt, while it waits for the program's threads), and the server
must still answer then, e.g. to show which thread holds up the exit.

From a call's submission until its handler returns, the GIL's switch
interval is short (_switching), so a host with busy threads answers in
milliseconds.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from threadctl import _switching

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreadPool:
    """Runs submitted calls on up to `max_workers` daemon threads, started lazily."""

    def __init__(
        self,
        max_workers: int,
        name_prefix: str,
        start: Callable[[threading.Thread], None],  # starts a worker (protected)
        *,
        min_workers: int = 2,
    ) -> None:
        self._max_workers = max_workers
        self._name_prefix = name_prefix
        self._start = start
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._counter = itertools.count(1)
        self._shut_down = False
        with self._lock:
            for _ in range(min_workers):
                self._start_worker()
                self._idle += 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot submit after shutdown")
            _switching.request_submitted()  # until the worker that takes it is done
            self._work.put((future, fn, args, kwargs))
            # An idle worker will take the item; otherwise start one, up to
            # the limit (beyond it the item waits for the next free worker).
            if self._idle > 0:
                self._idle -= 1
            elif len(self._workers) < self._max_workers:
                self._start_worker()
        return future

    def _start_worker(self) -> None:
        worker = threading.Thread(
            target=self._run, name=f"{self._name_prefix}-{next(self._counter)}", daemon=True
        )
        try:
            self._start(worker)
        except RuntimeError:
            return  # interpreter shutting down: the running workers serve the queue
        self._workers.append(worker)

    def shutdown(self, wait: float = 0.0) -> None:
        """Let the workers finish queued work and exit; wait up to `wait`
        seconds in all for them to end (the calling worker excepted)."""
        with self._lock:
            self._shut_down = True
            workers = list(self._workers)
        for _ in workers:
            self._work.put(None)
        deadline = time.monotonic() + wait
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(max(deadline - time.monotonic(), 0.0))

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            with _switching.request_worked_on():
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args, **kwargs))
                    except BaseException as error:  # noqa: BLE001 - handed to the future
                        future.set_exception(error)
            with self._lock:
                self._idle += 1
