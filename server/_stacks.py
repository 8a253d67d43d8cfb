"""Capture other threads' Python stacks without hurting the host.

Reading other threads' frames is the most dangerous thing the control plane
does. On CPython 3.11 concurrent `sys._current_frames()` calls from gRPC
handler threads locked the whole process up (cpython#106883), and serialising
them with a lock alone segfaulted; serialising them *and* pausing the cyclic GC
around the capture was stable. So every capture goes through one lock with the
GC paused, copies plain strings and ints out of the frames, and drops the frame
references before the GC runs again.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import NamedTuple

from threadctl._bytecode import current_call
from threadctl._known_waits import tagger

MAX_DEPTH = 128


def _stdlib_qualnames() -> dict[CodeType, str]:
    """Qualified names of the standard library's wait methods, for CPython
    3.10, whose code objects have no co_qualname (so Event.wait and
    Condition.wait would both read "wait")."""
    names = {}
    for cls in (
        threading.Thread, threading.Event, threading.Condition, threading.Semaphore,
        threading.Barrier, queue.Queue,
    ):  # fmt: skip
        for attribute, value in vars(cls).items():
            code = getattr(value, "__code__", None)
            if code is not None:
                names[code] = f"{cls.__name__}.{attribute}"
    return names


_QUALNAMES = {} if sys.version_info >= (3, 11) else _stdlib_qualnames()


def qualname(code: CodeType) -> str:
    return getattr(code, "co_qualname", None) or _QUALNAMES.get(code) or code.co_name


_capture_lock = threading.Lock()
_gc_paused = False  # True while frames_guarded() holds the GC off


class FrameInfo(NamedTuple):
    """One frame: file, line (0 when CPython cannot tell) and function;
    `known_as` tags frames of the waits and libraries threadctl recognises
    by code object (see _known_waits; "" for other code).

    A named tuple: listings build one per frame of every thread, and tuples
    are the cheapest immutable, hashable records Python has."""

    filename: str
    line: int
    function: str
    known_as: str = ""


@dataclass(frozen=True)
class Stack:
    """A thread's stack, innermost frame last; `truncated` if cut at the depth
    limit. `callee`: what the innermost frame is calling right now (see
    _bytecode.current_call; None when it is between bytecodes)."""

    frames: tuple[FrameInfo, ...]
    truncated: bool
    callee: str | None = None


EMPTY = Stack((), False)


@contextmanager
def frames_guarded() -> Iterator[None]:
    """The one way to touch other threads' frames (sys._current_frames(),
    sys._current_exceptions(), the landing check): serialised, with the GC
    paused. Callers must drop every frame reference before leaving, unless
    they keep it on purpose (a forced stop's landing anchor)."""
    global _gc_paused
    with _capture_lock:
        gc_was_enabled = gc.isenabled()
        gc.disable()
        _gc_paused = gc_was_enabled
        try:
            yield
        finally:
            _gc_paused = False
            if gc_was_enabled:
                gc.enable()


def _reset_after_fork() -> None:
    """A child forked while another thread was inside frames_guarded() would
    inherit the lock held (by a thread it does not have) and the GC paused
    for good: give it a fresh lock and its GC back."""
    global _capture_lock, _gc_paused
    _capture_lock = threading.Lock()
    if _gc_paused:
        _gc_paused = False
        gc.enable()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def capture_stacks(
    idents: Iterable[int] | None = None, depth: int = MAX_DEPTH, *, lines: bool = True
) -> dict[int, Stack]:
    """Stacks of the given threads (all threads running Python code if None),
    keyed by ident, at most `depth` innermost frames each. Without `lines`,
    every line is 0: computing a frame's line decodes its line table, and only
    shown stacks need it.

    Threads that are not running Python code at the moment (or have exited)
    are absent from the result.
    """
    wanted = None if idents is None else set(idents)
    known_as = tagger()
    with frames_guarded():
        frames = sys._current_frames()
        try:
            return {
                ident: _walk(frame, depth, lines, known_as)
                for ident, frame in frames.items()
                if wanted is None or ident in wanted
            }
        finally:
            del frames


def _walk(frame: FrameType, depth: int, lines: bool, known_as: Callable[[CodeType], str]) -> Stack:
    callee = current_call(frame.f_code, frame.f_lasti)
    frames: list[FrameInfo] = []
    walked: FrameType | None = frame
    while walked is not None and len(frames) < depth:
        frame = walked
        code = frame.f_code
        # f_lineno is sometimes None for frames of other threads (seen on 3.10
        # and 3.11); report it as 0, "line unknown".
        frames.append(
            FrameInfo(
                filename=code.co_filename,
                line=(frame.f_lineno or 0) if lines else 0,
                function=qualname(code),
                known_as=known_as(code),
            )
        )
        walked = frame.f_back
    frames.reverse()
    return Stack(frames=tuple(frames), truncated=walked is not None, callee=callee)
