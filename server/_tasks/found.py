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

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio

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
    """The thread running `loop` (None if it is not running). asyncio's loops
    record it in `_thread_id` while they run; other loops (uvloop) do not say."""
    ident = getattr(loop, "_thread_id", None)
    if not isinstance(ident, int) or not loop.is_running():
        return None
    thread: threading.Thread | None = threading._active.get(ident)  # type: ignore[attr-defined]
    return thread
