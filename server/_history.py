"""What threadctl's stops and cancels did, after the fact: a bounded history.

Every stop threadctl made (StopThread, each thread a StopAll acted on) and
every task cancel is an entry, with who asked, why and what the call
answered; the entry is completed when its thread or task ends, with how:

- a task: by a done callback added on its own loop: "cancelled",
  "returned", or "raised ValueError: ..." (read from the task's
  `_exception`: Task.exception() would mark it retrieved and silence
  asyncio's own "exception was never retrieved" log in the host);
- a thread that died of a stop exception: by the quiet excepthook (see
  _force), exactly ("raised ForcedStop: forced stop");
- any other end of a thread (it returned, or raised something the host's
  own hook reported): seen when the history is next read, so its
  `ended_at` is when threadctl saw it (`ended_observed`).

A thread threadctl did not act on is not recorded: nothing of threadctl runs
when an ordinary thread ends. Bounded: the last MAX_ENTRIES entries; the
history holds threads and tasks by weak reference only.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
import weakref
from dataclasses import dataclass

from threadctl._core.procfs import is_alive, native_id_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

MAX_ENTRIES = 100
_MAX_HOW = 200  # characters of an exception's text kept


@dataclass(slots=True)
class Entry:
    """One action and, once it is over, how its thread or task ended."""

    action: str  # "stop", "stop_all", "cancel"
    forced: bool
    requested_by: str  # the caller, as in the audit record
    reason: str
    outcome: str  # what the call answered (a StopOutcome or CancelOutcome value)
    requested_at: float
    name: str
    target: weakref.ref[object]
    # A thread's
    ident: int = 0
    native_id: int = 0
    identity: str = ""
    # or a task's
    task_id: int = 0
    coroutine: str = ""
    # How it ended ("" while it runs), and when.
    how: str = ""
    ended_at: float = 0.0
    ended_observed: bool = False  # ended_at is when threadctl saw the end

    def end(self, how: str, at: float, *, observed: bool = False) -> None:
        """Once; `how` is written last (readers take no lock: see _sweep)."""
        if not self.how:
            self.ended_at, self.ended_observed = at, observed
            self.how = how


_lock = threading.Lock()
_entries: collections.deque[Entry] = collections.deque(maxlen=MAX_ENTRIES)


def thread_stop(
    thread: threading.Thread, identity: str, *, action: str, forced: bool, caller: str, reason: str
) -> Entry:
    """Record a stop of `thread` as it is requested (after its checks: a
    refused stop is not recorded); `answered` completes it."""
    entry = Entry(
        action=action,
        forced=forced,
        requested_by=caller,
        reason=reason,
        outcome="",
        requested_at=time.time(),
        name=thread.name,
        target=weakref.ref(thread),
        ident=thread.ident or 0,
        native_id=native_id_of(thread) or 0,
        identity=identity,
    )
    with _lock:
        _entries.append(entry)
    return entry


def task_cancel(
    task: asyncio.Task[object],
    task_id: int,
    coroutine: str,
    *,
    forced: bool,
    caller: str,
    reason: str,
) -> Entry:
    """Record a cancel of `task` once it is on its way (a cancel refused is not
    recorded). Its end is recorded by a done callback added on its loop: for
    a cancel, before the task's next step; for a forced one, when its loop
    turns after the blocked step (within a turn of the task's end)."""
    entry = Entry(
        action="cancel",
        forced=forced,
        requested_by=caller,
        reason=reason,
        outcome="",
        requested_at=time.time(),
        name=task.get_name(),
        target=weakref.ref(task),
        task_id=task_id,
        coroutine=coroutine,
    )
    with _lock:
        _entries.append(entry)
    with contextlib.suppress(RuntimeError):  # its loop closed meanwhile: the task never ends
        task.get_loop().call_soon_threadsafe(task.add_done_callback, _ended(entry))
    return entry


def answered(entry: Entry, outcome: str, *, forced: bool) -> None:
    """The call that made `entry` answered `outcome`."""
    entry.outcome, entry.forced = outcome, forced


def thread_died(thread: threading.Thread | None, exc: BaseException | None) -> None:
    """From the quiet excepthook, in the dying thread: it dies of `exc`."""
    if thread is None:
        return
    how = f"raised {_exception_text(exc)}"
    now = time.time()
    with _lock:
        for entry in _entries:
            if entry.target() is thread:
                entry.end(how, now)


def entries() -> list[Entry]:
    """The history, oldest first, with every end seen so far."""
    _sweep()
    with _lock:
        return list(_entries)


def _forget_after_fork() -> None:
    """A forked child did none of its parent's actions (and another thread
    may have held the lock at the fork)."""
    global _lock
    _lock = threading.Lock()
    _entries.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _sweep() -> None:
    """Complete the entries of threads that have ended."""
    now = time.time()
    with _lock:
        for entry in _entries:
            if entry.how or entry.task_id:
                continue
            thread = entry.target()
            if not isinstance(thread, threading.Thread) or not is_alive(thread):  # or collected
                entry.end("exited", now, observed=True)


def _ended(entry: Entry) -> Callable[[asyncio.Task[object]], None]:
    def ended(task: asyncio.Task[object]) -> None:
        # On the task's loop: must never raise (asyncio would log it there).
        with contextlib.suppress(Exception):
            entry.end(_how_task_ended(task), time.time())

    return ended


def _how_task_ended(task: asyncio.Task[object]) -> str:
    if task.cancelled():
        return "cancelled"
    error = getattr(task, "_exception", None)
    return "returned" if error is None else f"raised {_exception_text(error)}"


def _exception_text(exc: BaseException | None) -> str:
    if exc is None:
        return "an exception"
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:_MAX_HOW]
