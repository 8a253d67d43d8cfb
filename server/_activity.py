"""What a thread is doing, in words an operator understands.

Derived from two facts: the kernel's scheduler state (running or sleeping)
and where the thread's innermost Python frame is (executing bytecode, or in
the middle of a call into C such as time.sleep, lock.acquire or sock.recv).
A thread that the kernel shows as sleeping while its frame is between
bytecodes is waiting for the GIL, which is running as far as an operator is
concerned. The callee's name comes from the bytecode before the call; the
surrounding frames (Event.wait, Queue.get, threadctl.sleep, ...) make the
detail precise. It is a heuristic: the listing says what it looks like.
"""

from __future__ import annotations

import enum
import functools
import os
from collections.abc import Callable, Sequence

from threadctl._stacks import FrameInfo


class Activity(enum.Enum):
    UNKNOWN = "unknown"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    IO = "io"
    BLOCKED = "blocked"


# threadctl's own files, wherever the package is installed (or edited).
_OURS = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Frames that name what a wait is for, matched from the innermost outward:
# (file name ending, function name) -> (activity, detail).
_KNOWN_WAITS: list[tuple[str, tuple[str, ...], Activity, str]] = [
    (_OURS + "_flag.py", ("sleep",), Activity.SLEEPING, "threadctl.sleep"),
    (_OURS + "_waits.py", ("get",), Activity.WAITING, "threadctl.get"),
    (_OURS + "_waits.py", ("wait",), Activity.WAITING, "threadctl.wait"),
    (_OURS + "_waits.py", ("wait_for",), Activity.WAITING, "threadctl.wait_for"),
    ("queue.py", ("Queue.get", "get"), Activity.WAITING, "queue.Queue.get"),
    ("queue.py", ("Queue.put", "put"), Activity.WAITING, "queue.Queue.put"),
    ("threading.py", ("Event.wait",), Activity.WAITING, "threading.Event.wait"),
    ("threading.py", ("Thread.join", "join"), Activity.WAITING, "threading.Thread.join"),
    ("threading.py", ("Semaphore.acquire",), Activity.WAITING, "threading.Semaphore.acquire"),
    ("threading.py", ("Barrier.wait",), Activity.WAITING, "threading.Barrier.wait"),
    (
        "threading.py",
        ("Condition.wait", "Condition.wait_for"),
        Activity.WAITING,
        "threading.Condition.wait",
    ),
    ("threading.py", ("wait",), Activity.WAITING, "threading.Condition.wait"),
    ("selectors.py", (), Activity.IO, "selectors"),
    ("socket.py", (), Activity.IO, "socket"),
    ("ssl.py", (), Activity.IO, "ssl"),
    ("socketserver.py", (), Activity.IO, "socketserver"),
    (
        "subprocess.py",
        ("Popen.wait", "Popen._wait", "Popen.communicate"),
        Activity.WAITING,
        "subprocess",
    ),
]
_LIBRARY_FILES = (*{suffix for suffix, *_ in _KNOWN_WAITS}, _OURS + "_force.py")
# Innermost frames looked at to name a wait (a threadctl.get sits 4 deep).
_WAIT_FRAMES = 6
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


def classify(
    frames: Sequence[FrameInfo], callee: str | None, kernel_state: Callable[[], str]
) -> tuple[Activity, str]:
    """(activity, detail) from the stack (innermost last), the innermost
    frame's current callee (see _bytecode.current_call) and the kernel state
    letter, which is only asked for (it costs a /proc read) when it decides:
    a thread in a C call threadctl cannot name may be running or blocked."""
    if not frames:
        return (Activity.RUNNING, "") if kernel_state() == "R" else (Activity.UNKNOWN, "")
    if callee is None:
        # Between bytecodes: running, or waiting for the GIL to run.
        return Activity.RUNNING, ""
    known = _known_wait(tuple(frames[-_WAIT_FRAMES:]))
    if known is not None:
        return known
    if callee == "sleep":
        return Activity.SLEEPING, "time.sleep"
    if callee in _IO_CALLEES:
        return Activity.IO, callee
    if callee == "__enter__":
        return Activity.WAITING, "with (lock or context manager)"
    if callee in _CALLEE_ACTIVITY:
        return _CALLEE_ACTIVITY[callee], callee
    if kernel_state() == "R":
        return Activity.RUNNING, f"in {callee}()" if callee else "in C code"
    return Activity.BLOCKED, callee or "C code"


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
        if not frame.filename.endswith(_LIBRARY_FILES):
            break
        run.append(frame)
    for frame in reversed(run):
        for suffix, functions, activity, detail in _KNOWN_WAITS:
            if frame.filename.endswith(suffix) and (not functions or frame.function in functions):
                return activity, detail if functions else f"{detail} {frame.function}"
    return None
