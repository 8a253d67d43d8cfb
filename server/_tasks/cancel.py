"""Cancelling one asyncio task from another thread, and telling what came of it.

Task.cancel() is not thread-safe: it is called on the task's own loop
(call_soon_threadsafe), like every other asyncio call from outside a loop.
What came of it is read back without touching the loop again:

- a done callback says the task finished (cancelled, or it returned or
  raised while handling the cancellation);
- a callback queued right after cancel() runs after the task's next step,
  the one in which the CancelledError was raised in it (the future the task
  waited on was cancelled, which queued the task's wake-up first; or the
  task was already queued to run). A task still pending then caught it: in
  an except or finally block, or an `async with` exit, it is still
  cancelling (cleaning up), elsewhere it ignored the cancellation.

A loop stuck in one step (a coroutine that never awaits) runs neither
callback: the answer is CANCELLING, and a forced stop of the loop's thread
is what ends that step (StopThread; see the README).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from threadctl import _audit, _history, _switching
from threadctl._control import validate
from threadctl._core import tasks as core
from threadctl._core.frames import frames_guarded
from threadctl._core.source import cleanup_lines
from threadctl._outcome import CancelOutcome
from threadctl._tasks import found, listing
from threadctl.errors import LoopClosed, TaskNotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio

# How often a wait re-checks whether the caller went away.
_ABANDON_CHECK_INTERVAL = 0.25


class CancelResult(NamedTuple):
    outcome: CancelOutcome
    task: listing.TaskSnapshot
    waited_seconds: float


class _Cancel:
    """One cancellation, delivered on the task's loop."""

    def __init__(self, task: asyncio.Task[object], message: str) -> None:
        self.task = task
        self.message = message
        self.finished = threading.Event()
        self.stepped = False  # the task has run the step that got the CancelledError

    def deliver(self) -> None:
        """On the task's loop: cancel it, and learn when it finished or stepped."""
        self.task.add_done_callback(lambda _: self.finished.set())
        if self.task.cancel(self.message):
            self.task.get_loop().call_soon(self._after_step)

    def _after_step(self) -> None:
        # _must_cancel stays set while the future the task waits on could not
        # be cancelled: the error is raised when that future is done.
        self.stepped = not getattr(self.task, "_must_cancel", False)


def cancel_task(
    task_id: int,
    *,
    reason: str,
    wait: float,
    caller: str,
    abandoned: Callable[[], bool] = lambda: False,
) -> CancelResult:
    """Cancel the pending task `task_id` and wait up to `wait` seconds for it
    to finish.

    Raises:
        InvalidArgument: a malformed reason or wait (nothing is audited).
        TaskNotFound: no pending task has that id (audited, as every refusal).
        LoopClosed: the task's loop is closed (audited).
    """
    validate(reason, wait, 0.0, False)
    task = pending_task(task_id, caller=caller, reason=reason)
    message = f"cancelled by threadctl ({caller})" + (f": {reason}" if reason else "")
    cancel = _Cancel(task, message)
    try:
        task.get_loop().call_soon_threadsafe(cancel.deliver)
    except RuntimeError:  # "Event loop is closed"
        error = LoopClosed(f"task {task_id}'s event loop is closed: nothing will run it again")
        refused(error, task_id, caller=caller, reason=reason)
        raise error from None
    entry = _history.task_cancel(
        task, task_id, core.coroutine_name(task), forced=False, caller=caller, reason=reason
    )
    started = time.monotonic()
    deadline = started + wait
    while wait > 0 and not cancel.finished.is_set() and not abandoned():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        with _switching.waiting():
            cancel.finished.wait(min(remaining, _ABANDON_CHECK_INTERVAL))
    waited = time.monotonic() - started
    result = CancelResult(_outcome(cancel, wait), listing.describe(task), waited)
    _audit.task_cancelled(caller=caller, result=result, reason=reason, forced=False)
    _history.answered(entry, result.outcome.value, forced=False)
    return result


def pending_task(
    task_id: int, *, caller: str, reason: str, forced: bool = False
) -> asyncio.Task[object]:
    """The pending task with id `task_id` (TaskNotFound, audited, if none)."""
    task = found.task_ids.find(task_id)
    if task is None or task.done():
        error = TaskNotFound(
            f"no pending task {task_id} (it finished, or no listing showed one with that id)"
        )
        refused(error, task_id, caller=caller, reason=reason, forced=forced)
        raise error
    return task


def refused(
    error: Exception, task_id: int, *, caller: str, reason: str, forced: bool = False
) -> None:
    _audit.refused(
        action="cancel", caller=caller, error=error, task_id=task_id, reason=reason, forced=forced
    )


def _outcome(cancel: _Cancel, wait: float) -> CancelOutcome:
    task = cancel.task
    if task.done():
        return CancelOutcome.CANCELLED if task.cancelled() else CancelOutcome.FINISHED
    if wait <= 0:
        return CancelOutcome.REQUESTED
    if not cancel.stepped or _cleaning_up(task):
        return CancelOutcome.CANCELLING
    return CancelOutcome.IGNORED


def _cleaning_up(task: asyncio.Task[object]) -> bool:
    """Whether one of the task's frames is in an except or finally block or
    an `async with` exit."""
    with frames_guarded():
        where = [(frame.f_code, frame.f_lineno) for frame in core.chain(task)]
    return any(line in cleanup_lines(code) for code, line in where if line is not None)
