"""Stop-aware waits: block like the standard library, wake at once on a stop.

Each wait registers a waker that notifies the condition it waits on when a
stop is requested, and checks the thread's stop flag while holding that
condition's lock, so no wake-up is lost and no thread polls: a waiting thread
uses no CPU. Like Java's Thread.interrupt waking wait() and sleep().

On a stop, the waits return (falsy, or the STOPPED marker for get()) unless
the caller asks for `raise_on_stop=True`, which raises threadctl.ThreadStopped.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from threadctl._force import install_quiet_excepthook
from threadctl._hooks import notify_waker
from threadctl._registry import ThreadState, registry
from threadctl.errors import ThreadStopped

T = TypeVar("T")


class Stopped(enum.Enum):
    """The type of STOPPED, for annotations (`int | threadctl.Stopped`); a
    one-member enum, so type checkers narrow `if item is threadctl.STOPPED`."""

    STOPPED = "STOPPED"

    def __repr__(self) -> str:
        return "threadctl.STOPPED"

    __str__ = __repr__


STOPPED = Stopped.STOPPED
"""What get() returns when a stop was requested (unless raise_on_stop)."""


class _Woke(enum.Enum):
    READY = 1
    STOPPED = 2
    TIMEOUT = 3


def wait(
    event: threading.Event, timeout: float | None = None, *, raise_on_stop: bool = False
) -> bool:
    """Like `event.wait(timeout)`, but returns as soon as a stop is requested.

    Returns:
        True if the event is set; False on timeout or stop (check
        threadctl.stop_requested() to tell them apart).

    Raises:
        ThreadStopped: a stop was requested and `raise_on_stop` is True.
    """
    # Private, but every CPython's Event has it (and a subclass of Event too).
    condition: threading.Condition = event._cond  # type: ignore[attr-defined]
    with condition:
        woke = _wait_until(condition, event.is_set, timeout)
    if woke is _Woke.STOPPED:
        _stopped(raise_on_stop)
        return event.is_set()
    return woke is _Woke.READY


def wait_for(
    condition: threading.Condition,
    predicate: Callable[[], T],
    timeout: float | None = None,
    *,
    raise_on_stop: bool = False,
) -> T | bool:
    """Like `condition.wait_for(predicate, timeout)` (call it holding the
    condition's lock), but returns as soon as a stop is requested.

    Returns:
        The predicate's last value: truthy when it became true, falsy on
        timeout or stop.

    Raises:
        ThreadStopped: a stop was requested and `raise_on_stop` is True.
    """
    if _wait_until(condition, predicate, timeout) is _Woke.STOPPED:
        _stopped(raise_on_stop)
    return predicate()


def get(
    q: queue.Queue[T], timeout: float | None = None, *, raise_on_stop: bool = False
) -> T | Stopped:
    """Like `q.get(timeout=timeout)`, but returns STOPPED as soon as a stop is
    requested, without taking an item.

    A stop takes precedence over available items, so a consumer that was
    asked to stop takes nothing more. Works with queue.Queue and its
    subclasses (LifoQueue, PriorityQueue); not with SimpleQueue.

    Raises:
        queue.Empty: the timeout passed with no item.
        ThreadStopped: a stop was requested and `raise_on_stop` is True.
    """
    with q.not_empty:
        woke = _wait_until(q.not_empty, q._qsize, timeout)
        if woke is _Woke.READY:
            item = q._get()
            q.not_full.notify()
            return item
    if woke is _Woke.TIMEOUT:
        raise queue.Empty
    _stopped(raise_on_stop)
    return STOPPED


def _wait_until(
    condition: threading.Condition, ready: Callable[[], Any], timeout: float | None
) -> _Woke:
    """With `condition` held: wait until a stop is requested, ready(), or timeout."""
    state = registry.current()
    deadline = None if timeout is None else time.monotonic() + timeout
    with _waker(state, condition):
        while True:
            if state.stop_is_requested:
                return _Woke.STOPPED
            if ready():
                return _Woke.READY
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return _Woke.TIMEOUT
            condition.wait(remaining)


@contextmanager
def _waker(state: ThreadState, condition: threading.Condition) -> Iterator[None]:
    waker = notify_waker(condition)
    with state.lock:
        state.wakers.append(waker)
    try:
        yield
    finally:
        with state.lock:
            state.wakers.remove(waker)


def _stopped(raise_on_stop: bool) -> None:
    if raise_on_stop:
        install_quiet_excepthook()
        raise ThreadStopped("stop requested")
