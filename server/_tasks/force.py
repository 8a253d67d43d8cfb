"""Ending the asyncio task that holds its loop: a forced stop confined to
that task's frames.

A task stuck in code that never awaits (a CPU-bound loop, a blocking call)
never gets a cancellation: the CancelledError is raised at an await. What
ends it is threadctl.ForcedStop raised in its own code, by a forced stop of
its loop's thread (see _force) that may land only while one of the task's
frames runs. Task.__step stores the exception as the task's (it re-raises
only KeyboardInterrupt and SystemExit), or the task's framework catches it
(uvicorn answers 500) and the task returns; either way the task ended
(FORCE_ENDED), and the loop and every other task go on. If the task
awaits before the stop lands, no frame of it runs any more: the stop is
over and nothing was raised (MOVED_ON), so it can never hit the loop's own
code or the next task.

Only the task its loop runs right now can be forced; the others are
suspended at an await, where a cancellation reaches them.

Hazard: like every forced stop, it sets the stop flag of the thread (here
the loop's) until it lands or is over; another task of that loop that reads
threadctl.stop_requested() meanwhile (the task is blocked in a C call, say)
sees it set.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from threadctl import _audit, _force, _history, _switching
from threadctl._control import validate
from threadctl._core import tasks as core
from threadctl._core.frames import frames_guarded
from threadctl._outcome import CancelOutcome
from threadctl._registry import ForceEpisode, registry
from threadctl._tasks import found, listing
from threadctl._tasks.cancel import CancelResult, pending_task, refused
from threadctl.errors import ProtectedThread

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio

_POLL_INTERVAL = 0.01


def force_task(
    task_id: int,
    *,
    reason: str,
    wait: float,
    caller: str,
    abandoned: Callable[[], bool] = lambda: False,
) -> CancelResult:
    """Raise threadctl.ForcedStop in the code of task `task_id`, which its
    loop must be running a step of now, and wait up to `wait` seconds for the
    task to end.

    Raises:
        InvalidArgument: a malformed reason or wait (nothing is audited).
        TaskNotFound: no pending task has that id (audited).
        ProtectedThread: the task is not running a step now, or its loop's
            thread cannot be forced (audited).
    """
    validate(reason, wait, 0.0, True)
    task = pending_task(task_id, caller=caller, reason=reason, forced=True)
    try:
        with frames_guarded():
            stepping = found.stepping_thread(task)
        if stepping is None:
            raise ProtectedThread(
                f"task {task_id} is not running a step now (it waits at an await); cancel it"
                " without --force: the cancellation reaches it there"
            )
        thread, frames = stepping
        del stepping
        state = registry.state_of(thread)
        episode = _force.force(thread, state, reason or f"task {task_id} forced", frames)
        del frames
        if episode is None:
            raise ProtectedThread(
                f"a forced stop of thread {thread.name!r}, which runs task {task_id}'s loop, is"
                " already in progress"
            )
    except ProtectedThread as error:
        refused(error, task_id, caller=caller, reason=reason, forced=True)
        raise
    entry = _history.task_cancel(
        task, task_id, core.coroutine_name(task), forced=True, caller=caller, reason=reason
    )
    started = time.monotonic()
    deadline = started + wait
    while not task.done() and not episode.ended and not abandoned():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        with _switching.waiting():
            time.sleep(min(remaining, _POLL_INTERVAL))
    _force.settle(thread, state)  # caught by Task.__step, or moved on: the request is over
    waited = time.monotonic() - started
    result = CancelResult(_outcome(task, episode), listing.describe(task), waited)
    _audit.task_cancelled(caller=caller, result=result, reason=reason, forced=True)
    _history.answered(entry, result.outcome.value, forced=True)
    return result


def _outcome(task: asyncio.Task[object], episode: ForceEpisode) -> CancelOutcome:
    if task.done():
        if episode.delivered_at:  # raised in it: ended by it, or by what it did with it
            return CancelOutcome.FORCE_ENDED
        return CancelOutcome.CANCELLED if task.cancelled() else CancelOutcome.FINISHED
    if episode.ended == "moved_on":
        return CancelOutcome.MOVED_ON
    return CancelOutcome.FORCE_PENDING
