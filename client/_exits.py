"""The CLI's exit codes, and which error ends with which."""

from __future__ import annotations

import enum

from threadctl.client._errors import (
    InvalidArgument,
    NotAllowed,
    Refused,
    TargetNotFound,
    TargetUnavailable,
    ThreadNotFound,
)
from threadctl.client.attach._errors import AttachFailed

HELP = """Exit codes (stable, for scripts):
    0  success (for `stop` without --wait: the stop was requested)
    1  unexpected error (of the server, or the output could not be written)
    2  usage error (bad arguments, or a request the server called malformed)
    3  target not found or unreachable (`health`: or not serving)
    4  no such thread (`cancel`: no such pending task)
    5  refused (protected thread, the id now names another thread, forced
       stops disabled or impossible for that thread; attach: not a CPython
       process, unsupported version, opted out of remote debugging)
    6  not exited when --wait ran out (the stop request stands; with --force:
       the exception is pending, deferred, or was caught; `cancel`: the task
       has not finished, or caught the cancellation)
    7  not allowed (no or wrong credentials, no permission to stop, no
       permission to ptrace the process)
    8  attach failed (injection failed, deadline passed, import failed inside
       the process, or the process exited during the attach)
    9  the forced stop ended the thread's task, not the thread: it caught the
       exception and goes on (a thread-pool worker), or its task finished
       before the stop could land; the request is over
"""


class Exit(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    UNREACHABLE = 3
    NO_SUCH_THREAD = 4
    REFUSED = 5
    STILL_RUNNING = 6
    NOT_ALLOWED = 7
    ATTACH_FAILED = 8
    TASK_ENDED = 9


# Stop outcomes that end the request with the thread alive (exit code 9).
TASK_OUTCOMES = frozenset({"task_ended", "moved_on"})


def exit_code_of_stop(outcome: str, wait: float) -> Exit:
    """The exit code of a `stop` that answered `outcome` (with --wait `wait`)."""
    if outcome in TASK_OUTCOMES:
        return Exit.TASK_ENDED
    if wait > 0 and outcome != "exited":
        return Exit.STILL_RUNNING
    return Exit.OK


_EXIT_OF_ERROR: list[tuple[type[Exception], Exit]] = [
    (AttachFailed, Exit.ATTACH_FAILED),
    (InvalidArgument, Exit.USAGE),
    (TargetNotFound, Exit.UNREACHABLE),
    (TargetUnavailable, Exit.UNREACHABLE),
    (ThreadNotFound, Exit.NO_SUCH_THREAD),
    (Refused, Exit.REFUSED),
    (NotAllowed, Exit.NOT_ALLOWED),
]


def exit_code_of(error: Exception) -> Exit:
    """The exit code a CLI run that failed with `error` ends with."""
    return next((code for cls, code in _EXIT_OF_ERROR if isinstance(error, cls)), Exit.ERROR)
