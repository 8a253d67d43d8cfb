"""What a stop or a task's cancellation achieved: one enum each for the
in-process API (threadctl.stop) and the client (threadctl.client), so both
answer in the same type.

A str enum: a member compares equal to its value (`outcome == "exited"`),
prints as it, and is written to JSON as it, as the CLI's `--json` promises.
"""

from __future__ import annotations

import enum


class StopOutcome(str, enum.Enum):
    """What a stop achieved."""

    REQUESTED = "requested"  # flag set, no wait asked for
    EXITED = "exited"
    STILL_RUNNING = "still_running"  # cooperative wait ran out
    FORCE_PENDING = "force_pending"  # exception queued; thread blocked in C
    FORCE_DEFERRED = "force_deferred"  # waits to land (critical section, protected code)
    FORCE_DELIVERED = "force_delivered"  # raised, the thread is unwinding
    TASK_ENDED = "task_ended"  # raised and caught: the task ended, the thread goes on
    MOVED_ON = "moved_on"  # the code it was meant for finished before it could land
    # Client side only: an outcome a newer server sent that this one does not know.
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return str(self.value)


class CancelOutcome(str, enum.Enum):
    """What cancelling an asyncio task achieved (see CancelOutcome in the proto)."""

    REQUESTED = "requested"  # scheduled on its loop, no wait asked for
    CANCELLED = "cancelled"  # finished as cancelled
    FINISHED = "finished"  # finished otherwise: returned or raised
    CANCELLING = "cancelling"  # not delivered yet, or running its cleanup
    IGNORED = "ignored"  # caught the CancelledError and went on
    FORCE_ENDED = "force_ended"  # forced: ForcedStop ended the task
    FORCE_PENDING = "force_pending"  # forced: not raised yet, or still unwinding
    MOVED_ON = "moved_on"  # forced: the task awaited first; nothing raised
    # Client side only: an outcome a newer server sent that this one does not know.
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return str(self.value)
