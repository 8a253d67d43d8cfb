"""What a thread is doing, in words an operator understands.

Derived from two facts: the kernel's scheduler state (running or sleeping)
and where the thread's innermost Python frame is (executing bytecode, or in
the middle of a call into C such as time.sleep, lock.acquire or sock.recv).
A thread that the kernel shows as sleeping while its frame is between
bytecodes is waiting for the GIL, which is running as far as an operator is
concerned. The callee's name comes from the call's bytecode (_bytecode); the
surrounding frames (Event.wait, Queue.get, threadctl.sleep, ..., recognised
by code object: _known_waits) make the detail precise. It is a heuristic:
the listing says what it looks like.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence

from threadctl._core.frames import FrameInfo
from threadctl._core.known_waits import WAITS


class Activity(enum.Enum):
    UNKNOWN = "unknown"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    IO = "io"
    BLOCKED = "blocked"


# Frames that name what a wait is for, by tag (see _known_waits: the tag says
# which known function or library module a frame runs).
_KNOWN_WAITS = {tag: (Activity(activity), detail) for tag, (activity, detail) in WAITS.items()}
# Innermost frames looked at to name a wait (a threadctl.get sits 4 deep).
WAIT_FRAMES = 6
_CALLEE_ACTIVITY = {
    "sleep": Activity.SLEEPING,
    "acquire": Activity.WAITING,
    "wait": Activity.WAITING,
    "join": Activity.WAITING,
    "get": Activity.WAITING,
    "put": Activity.WAITING,
    "__enter__": Activity.WAITING,
}
_IO_CALLEES = {
    "recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg", "send", "sendall",
    "sendto", "sendmsg", "accept", "connect", "read", "readinto", "readline",
    "readlines", "write", "select", "poll", "epoll", "getaddrinfo", "urlopen",
}  # fmt: skip


# What the frames alone say: (activity, detail, otherwise), where `otherwise`
# is None when that is the answer, else the answer for a thread the kernel
# does not show running ("R"). A pure function of the code objects and the
# innermost instruction, so listings cache it per (codes, instruction).
Judged = tuple[Activity, str, tuple[Activity, str] | None]


def classify(
    frames: Sequence[FrameInfo], callee: str | None, kernel_state: Callable[[], str]
) -> tuple[Activity, str]:
    """(activity, detail) from the stack (innermost last), the innermost
    frame's current callee (see _bytecode.current_call) and the kernel state
    letter, which is only asked for (it costs a /proc read) when it decides:
    a thread in a C call threadctl cannot name may be running or blocked."""
    return decide(judge(frames, callee), kernel_state)


def decide(judged: Judged, kernel_state: Callable[[], str]) -> tuple[Activity, str]:
    """The answer of `judge`, asking the kernel only where it decides."""
    activity, detail, otherwise = judged
    if otherwise is None or kernel_state() == "R":
        return activity, detail
    return otherwise


def judge(frames: Sequence[FrameInfo], callee: str | None) -> Judged:
    """What `frames` and `callee` say (see Judged)."""
    if not frames:
        return Activity.RUNNING, "", (Activity.UNKNOWN, "")
    if callee is None:
        # Between bytecodes: running, or waiting for the GIL to run.
        return Activity.RUNNING, "", None
    known = _known_wait(tuple(frames[-WAIT_FRAMES:]))
    if known is not None:
        return (*known, None)
    if callee == "sleep":
        return Activity.SLEEPING, "time.sleep", None
    if callee in _IO_CALLEES:
        return Activity.IO, callee, None
    if callee == "__enter__":
        return Activity.WAITING, "with (lock or context manager)", None
    if callee in _CALLEE_ACTIVITY:
        return _CALLEE_ACTIVITY[callee], callee, None
    return (
        Activity.RUNNING,
        f"in {callee}()" if callee else "in C code",
        (Activity.BLOCKED, callee or "C code"),
    )


@functools.lru_cache(maxsize=4096)
def _known_wait(frames: tuple[FrameInfo, ...]) -> tuple[Activity, str] | None:
    """The most specific known wait among the innermost library frames.

    Only the contiguous run of library frames at the top of the stack counts
    (a socketserver handler that sleeps is sleeping, not doing socket I/O),
    and the outermost match in it wins (threadctl.sleep, not the
    Condition.wait it is built on).
    """
    run = []
    for frame in reversed(frames):
        if not frame.known_as:
            break
        run.append(frame)
    for frame in reversed(run):
        known = _KNOWN_WAITS.get(frame.known_as)
        if known is not None:
            activity, detail = known
            # A module-wide tag ("socket") names the function in the detail.
            return activity, detail if ":" in frame.known_as else f"{detail} {frame.function}"
    return None
