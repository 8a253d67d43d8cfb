"""Ids for asyncio tasks and loops that are never reused, and the thread
running each loop. Finding the tasks is the core's (_core.tasks): the
one-shot job inside a process without threadctl finds them the same way.

Hazard: a task or loop must never be kept alive by being listed: ids map
to them through weak references only.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import weakref
from typing import Generic, TypeVar

from threadctl._core import tasks

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from types import FrameType

_T = TypeVar("_T")


class Ids(Generic[_T]):
    """Ids for objects of one kind (tasks, or loops), from 1, never reused in
    this process, with when each object was first seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._of: weakref.WeakKeyDictionary[_T, tuple[int, float]] = weakref.WeakKeyDictionary()
        self._by_id: weakref.WeakValueDictionary[int, _T] = weakref.WeakValueDictionary()

    def of(self, thing: _T) -> tuple[int, float]:
        """The id of `thing` and when it was first seen (given now if new)."""
        with self._lock:
            known = self._of.get(thing)
            if known is None:
                known = (next(self._numbers), time.time())
                self._of[thing] = known
                self._by_id[known[0]] = thing
            return known

    def find(self, number: int) -> _T | None:
        """The object with id `number`, None if it never had one or is gone."""
        with self._lock:
            return self._by_id.get(number)


task_ids: Ids[asyncio.Task[object]] = Ids()
loop_ids: Ids[asyncio.AbstractEventLoop] = Ids()


def loop_thread(loop: asyncio.AbstractEventLoop) -> threading.Thread | None:
    """The thread running `loop`, None if it is not running or cannot be
    told: the core's answer (_core.tasks.running_thread), else the thread the
    loop's last probe ran in (see probe). Call inside frames_guarded().

    Hazard: a thread learnt from a probe is stale if the loop was stopped and
    run again by another thread and has not answered a probe since (only a
    loop other than asyncio's, blocked in a callback, can be listed so).
    """
    if not loop.is_running():
        return None
    ident = tasks.running_thread(loop)
    if not ident:
        with _probed_lock:
            ident = _probed_in.get(loop, 0)
    return _thread(ident) if ident else None


def stepping_thread(
    task: asyncio.Task[object],
) -> tuple[threading.Thread, list[FrameType]] | None:
    """The thread running a step of `task` now and its frames from the
    task's coroutine's inward (see _core.tasks.stepping); None if no thread
    does or it is not a threading thread. Call inside frames_guarded()."""
    found = tasks.stepping(task)
    thread = _thread(found[0]) if found is not None else None
    return (thread, found[1]) if found is not None and thread is not None else None


def _thread(ident: int) -> threading.Thread | None:
    thread: threading.Thread | None = threading._active.get(ident)  # type: ignore[attr-defined]
    return thread


def note_running_thread(loop: asyncio.AbstractEventLoop) -> None:
    """Called in the loop's thread, by a probe the loop runs: remembers that
    thread for loops that do not record it (see loop_thread)."""
    with _probed_lock:
        _probed_in[loop] = threading.get_ident()


def running_here(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop` is the loop running in the calling thread."""
    events = sys.modules.get("asyncio.events")
    return events is not None and events._get_running_loop() is loop


_probed_lock = threading.Lock()
_probed_in: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()
