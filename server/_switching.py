"""A short GIL switch interval while threadctl works beside busy threads.

Beside a busy pure-Python thread every GIL hand-off waits for that thread's
full switch interval (5 ms by default). Two parts of threadctl lower it to
FAST_INTERVAL while they need hand-offs to be quick, through one counter
(`short_interval`): the interval is short while anyone holds it and the
host's own as soon as nobody does.

- Requests: a host with a runaway thread is where threadctl is needed most,
  and the sync gRPC server takes the GIL 14 to 25 times per call: one busy
  thread made a listing take about 30 ms, four about 180 ms. From the moment
  a request is handed to a worker until its handler returns it holds the
  short interval; while the handler *waits* (for a stopped thread to end,
  a cancelled task, the next WatchThreads message) it lets go (`waiting()`),
  so the host runs at its own interval however long the operator waits.
- The lander of deferred forced stops (_force), while it waits for a busy
  thread to be where a stop may land.

Hazards, and what is done about them:
- The interval is process-wide: the host's threads switch more often while
  it is short (milliseconds per request; `make bench` measures the host's
  work beside busy threads, polled and not).
- The host may set the interval itself meanwhile: it is put back only if it
  still is the value set here, else the host's choice stays. An interval
  already at or below FAST_INTERVAL is never touched.
- Every hold is released by the code that took it, also when it raises;
  a forked child starts with nothing held and the host's interval.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

FAST_INTERVAL = 0.0002  # seconds (CPython's default: 0.005)


class ShortInterval:
    """The switch interval, FAST_INTERVAL while held at least once."""

    def __init__(self, fast: float = FAST_INTERVAL) -> None:
        self._fast = fast
        self._lock = threading.Lock()
        self._holds = 0
        self._host: float | None = None  # the host's interval, while lowered
        self._set = 0.0  # what the interval reads back after lowering it

    def hold(self) -> None:
        with self._lock:
            self._holds += 1
            if self._holds == 1:
                current = sys.getswitchinterval()
                if current > self._fast:
                    sys.setswitchinterval(self._fast)
                    self._host, self._set = current, sys.getswitchinterval()

    def release(self) -> None:
        with self._lock:
            if self._holds == 0:  # a hold taken before a fork, released in the child
                return
            self._holds -= 1
            if self._holds == 0:
                self._put_back_locked()

    def _put_back_locked(self) -> None:
        if self._host is not None and sys.getswitchinterval() == self._set:
            sys.setswitchinterval(self._host)
        self._host = None

    def forget_after_fork(self) -> None:
        """In a forked child nothing holds it (the threads that did are gone)."""
        self._lock = threading.Lock()
        self._holds = 0
        self._put_back_locked()


short_interval = ShortInterval()
_worker = threading.local()


def request_submitted() -> None:
    """A request was handed to a worker (on any thread): hold the short
    interval until that worker's request_worked_on() ends."""
    short_interval.hold()


@contextlib.contextmanager
def request_worked_on() -> Iterator[None]:
    """Around a handler, on the worker running it (after request_submitted)."""
    _worker.inside = True
    try:
        yield
    finally:
        _worker.inside = False
        short_interval.release()


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Around a wait of a handler: the host's interval meanwhile. Does
    nothing in any other thread (threadctl.stop(wait=...) in the host)."""
    if not getattr(_worker, "inside", False):
        yield
        return
    short_interval.release()
    try:
        yield
    finally:
        short_interval.hold()


def _forget_after_fork() -> None:
    global _worker
    short_interval.forget_after_fork()
    _worker = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
