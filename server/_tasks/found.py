"""Finding every pending asyncio task of the process, and naming tasks and
loops with ids that are never reused.

Tasks are found in asyncio's own registries (`asyncio.tasks._all_tasks` on
CPython 3.10 and 3.11, `_scheduled_tasks` and `_eager_tasks` from 3.12),
which the C and the pure-Python Task both register in: so tasks created
before threadctl was installed or attached are found, in loops of any
thread, and nothing of ours runs inside the loops to find them. asyncio is
never imported here: a process that has not imported it has no tasks.

Hazards:
- every loop's thread writes those registries without a lock; a copy taken
  from another thread can meet "changed size during iteration" and is taken
  again, as asyncio.all_tasks() does;
- a task or loop must never be kept alive by being listed: ids map to them
  through weak references only.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import weakref
from typing import Generic, TypeVar

from threadctl._core.frames import MAX_DEPTH

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from types import FrameType

_T = TypeVar("_T")
_REGISTRIES = ("_all_tasks", "_scheduled_tasks", "_eager_tasks")
_COPY_ATTEMPTS = 1000


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


def pending_tasks() -> list[asyncio.Task[object]]:
    """Every task of the process that has not finished, in no set order."""
    tasks_module = sys.modules.get("asyncio.tasks")
    if tasks_module is None:
        return []
    registries = [getattr(tasks_module, name, ()) for name in _REGISTRIES]
    found: list[asyncio.Task[object]] = []
    for _ in range(_COPY_ATTEMPTS):
        try:
            found = [task for registry in registries for task in list(registry)]
            break
        except RuntimeError:  # a loop's thread added or removed one meanwhile
            continue
    return [task for task in dict.fromkeys(found) if not task.done()]


def current_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[object] | None:
    """The task `loop` runs a step of right now (asyncio.current_task(loop),
    which reads a dict and may be called from any thread)."""
    tasks_module = sys.modules.get("asyncio.tasks")
    if tasks_module is None:
        return None
    task: asyncio.Task[object] | None = tasks_module.current_task(loop)
    return task


def loop_thread(loop: asyncio.AbstractEventLoop) -> threading.Thread | None:
    """The thread running `loop`, None if it is not running or cannot be
    told. asyncio's own loops record it in `_thread_id`; for the others
    (uvloop) it is the thread running a step of the loop's current task, else
    the thread the loop's last probe ran in (see probe). Call inside
    frames_guarded().

    Hazard: a thread learnt from a probe is stale if the loop was stopped and
    run again by another thread and has not answered a probe since (only a
    loop other than asyncio's, blocked in a callback, can be listed so).
    """
    if not loop.is_running():
        return None
    ident = getattr(loop, "_thread_id", None)
    if isinstance(ident, int):
        return _thread(ident)
    current = current_task(loop)
    stepping = stepping_thread(current) if current is not None else None
    if stepping is not None:
        return stepping[0]
    with _probed_lock:
        ident = _probed_in.get(loop)
    return _thread(ident) if ident is not None else None


def stepping_thread(
    task: asyncio.Task[object],
) -> tuple[threading.Thread, list[FrameType]] | None:
    """The thread running a step of `task` now, and its frames from the task's
    coroutine's inward (outermost first): the thread whose stack holds that
    coroutine's frame, which is true of any loop. None if no thread does
    (the step ended meanwhile) or it is not a threading thread. Call inside
    frames_guarded()."""
    coro = task.get_coro()
    outermost: FrameType | None = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
    if outermost is None:
        return None
    for ident, innermost in sys._current_frames().items():
        frame: FrameType | None = innermost
        inner: list[FrameType] = []
        while frame is not None and frame is not outermost and len(inner) < MAX_DEPTH:
            inner.append(frame)
            frame = frame.f_back
        if frame is outermost:
            thread = _thread(ident)
            return (thread, [outermost, *reversed(inner)]) if thread is not None else None
    return None


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
