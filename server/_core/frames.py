"""Other threads' Python frames: the one guarded way to touch them, and
walking them into plain data.

Reading other threads' frames is the most dangerous thing the control plane
does. On CPython 3.11 concurrent `sys._current_frames()` calls from gRPC
handler threads locked the whole process up (cpython#106883), and serialising
them with a lock alone segfaulted; serialising them *and* pausing the cyclic GC
around the capture was stable. So every touch goes through frames_guarded():
one lock, the GC paused, plain strings and ints copied out, and the frame
references dropped before the GC runs again.
"""

from __future__ import annotations

import _thread
import gc
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType, FrameType

    FrameFinder = Callable[[int], FrameType | None]  # ident -> that thread's innermost frame

MAX_DEPTH = 128


class FrameInfo(tuple[str, int, str, str]):
    """One frame: file, line (0 when CPython cannot tell), function, and
    `known_as`, the tag of a wait or library threadctl recognises by code
    object (see known_waits; "" for other code).

    A tuple: listings build one per frame of every thread, and tuples are the
    cheapest immutable, hashable records Python has (a hand-made named tuple,
    so this module needs no `typing`)."""

    __slots__ = ()

    def __new__(cls, filename: str, line: int, function: str, known_as: str = "") -> FrameInfo:
        return tuple.__new__(cls, (filename, line, function, known_as))

    @property
    def filename(self) -> str:
        return self[0]

    @property
    def line(self) -> int:
        return self[1]

    @property
    def function(self) -> str:
        return self[2]

    @property
    def known_as(self) -> str:
        return self[3]

    def __repr__(self) -> str:
        return (
            f"FrameInfo(filename={self.filename!r}, line={self.line!r},"
            f" function={self.function!r}, known_as={self.known_as!r})"
        )


class Stack:
    """A thread's stack, innermost frame last; `truncated` if cut at the depth
    limit. `callee`: what the innermost frame is calling right now (see
    threadctl._bytecode.current_call; None when it is between bytecodes)."""

    __slots__ = ("callee", "frames", "truncated")

    def __init__(
        self, frames: tuple[FrameInfo, ...], truncated: bool, callee: str | None = None
    ) -> None:
        self.frames = frames
        self.truncated = truncated
        self.callee = callee

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stack):
            return NotImplemented
        return (self.frames, self.truncated, self.callee) == (
            other.frames,
            other.truncated,
            other.callee,
        )

    __hash__ = None  # type: ignore[assignment]  # unhashable, as __eq__ without __hash__ makes it

    def __repr__(self) -> str:
        return (
            f"Stack(frames={self.frames!r}, truncated={self.truncated!r}, callee={self.callee!r})"
        )


EMPTY = Stack((), False)

_capture_lock = _thread.allocate_lock()

# gc_paused() state: how many callers hold the GC off now, and whether the GC
# was on when the first of them came (only then does the last turn it back on).
_pause_lock = _thread.allocate_lock()
_pausers = 0
_gc_paused = False  # True while the GC may be off because of us


def _pause() -> None:
    # _gc_paused is True whenever the GC may be off because of us: set before
    # the GC is disabled, cleared after it is enabled again. A fork between
    # the two steps then gives the child at worst a GC enabled twice, never
    # one left off (CI saw 1 child in 300 with its GC off when the flag was
    # set after gc.disable()).
    global _pausers, _gc_paused
    with _pause_lock:
        if _pausers == 0:
            _gc_paused = gc.isenabled()
            gc.disable()
        _pausers += 1


def _resume() -> None:
    global _pausers, _gc_paused
    with _pause_lock:
        _pausers = max(0, _pausers - 1)  # 0 after a fork inside a pause
        if _pausers == 0 and _gc_paused:
            gc.enable()
            _gc_paused = False


class _Pause:
    def __enter__(self) -> None:
        _pause()

    def __exit__(self, *exc_info: object) -> None:
        _resume()


def gc_paused() -> _Pause:
    """`with gc_paused():` holds the cyclic GC off, for any number of
    threads at once (the last one out turns it back on, if it was on).

    For frame captures (see frames_guarded), and for work that allocates
    many tracked objects at once, such as a listing of 10,000 threads, whose
    allocations would otherwise run dozens of collections over the host's
    heap (measured: a third of such a listing); those collections are
    deferred to the first allocation after it, merged into one.
    Hazard: an application calling gc.disable() meanwhile gets the GC back
    on at the end; keep pauses short.
    """
    return _Pause()


class _Guard:
    def __enter__(self) -> None:
        _capture_lock.acquire()
        _pause()

    def __exit__(self, *exc_info: object) -> None:
        _resume()
        _capture_lock.release()


def frames_guarded() -> _Guard:
    """The one way to touch other threads' frames (sys._current_frames(),
    sys._current_exceptions(), the landing check): `with frames_guarded():`
    serialises, with the GC paused. Callers must drop every frame reference
    before leaving, unless they keep one on purpose (a forced stop's landing
    anchor). Not reentrant."""
    return _Guard()


_finder_of: Callable[[], FrameFinder | None] | None = None


def use_frame_finder(finder_of: Callable[[], FrameFinder | None]) -> None:
    """Give frame_of() a lookup of one thread's frame that costs less than
    every thread's: `finder_of()` returns it (ident -> that thread's
    innermost frame, or None if not found), or None while it has none. The
    host's is native (threadctl._native); without one (a one-shot job inside
    a target), frame_of() uses sys._current_frames()."""
    global _finder_of
    _finder_of = finder_of


def frame_of(ident: int) -> FrameType | None:
    """The innermost frame of thread `ident`, None if it runs no Python code.
    Call inside frames_guarded(), and drop the frame before leaving it.

    Hazard: for the calling thread, that frame is this function's, whose
    f_back is the caller's: a caller that keeps the frame in a local while
    its own frame is reached (walking f_back) makes a reference cycle; drop
    it explicitly (`del`) before returning, as for sys._current_frames().
    """
    find = _finder_of() if _finder_of is not None else None
    frame = find(ident) if find is not None else None
    return frame if frame is not None else sys._current_frames().get(ident)


def reset_after_fork() -> None:
    """For the host's at-fork hook: a child forked while another thread was
    inside frames_guarded() or gc_paused() would inherit the locks held (by
    threads it does not have) and the GC paused for good; give it fresh
    locks and its GC back."""
    global _capture_lock, _pause_lock, _pausers, _gc_paused
    _capture_lock = _thread.allocate_lock()
    _pause_lock = _thread.allocate_lock()
    _pausers = 0
    if _gc_paused:
        _gc_paused = False
        gc.enable()


def walk(
    frame: FrameType, depth: int, lines: bool, known_as: Callable[[CodeType], str]
) -> tuple[tuple[FrameInfo, ...], bool]:
    """The innermost `depth` frames from `frame` outward, innermost last, and
    whether outer frames were cut. Without `lines`, every line is 0
    (computing a line decodes the line table; only shown stacks need it).
    Call inside frames_guarded()."""
    frames: list[FrameInfo] = []
    walked: FrameType | None = frame
    while walked is not None and len(frames) < depth:
        code = walked.f_code
        # f_lineno is sometimes None for frames of other threads (seen on 3.10
        # and 3.11); report it as 0, "line unknown".
        frames.append(
            FrameInfo(
                code.co_filename,
                (walked.f_lineno or 0) if lines else 0,
                qualname(code),
                known_as(code),
            )
        )
        walked = walked.f_back
    frames.reverse()
    return tuple(frames), walked is not None


def qualname(code: CodeType) -> str:
    """co_qualname where the code has one (3.11+), else the qualified name of
    the standard library's wait methods (so Event.wait and Condition.wait do
    not both read "wait" on 3.10), else co_name."""
    found: str | None = getattr(code, "co_qualname", None)
    if found:
        return found
    return _stdlib_qualnames().get(code) or code.co_name


_QUALNAMES: tuple[tuple[object, object], dict[CodeType, str]] | None = None


def _stdlib_qualnames() -> dict[CodeType, str]:
    """Only from modules already imported (threadctl must not import them),
    rebuilt once they are."""
    global _QUALNAMES
    threading, queue = sys.modules.get("threading"), sys.modules.get("queue")
    if _QUALNAMES is None or _QUALNAMES[0] != (threading, queue):
        names = {}
        for module, name in [
            (threading, "Thread"),
            (threading, "Event"),
            (threading, "Condition"),
            (threading, "Semaphore"),
            (threading, "Barrier"),
            (queue, "Queue"),
        ]:
            cls = getattr(module, name, None)
            for attribute, value in vars(cls).items() if cls is not None else ():
                code = getattr(value, "__code__", None)
                if code is not None:
                    names[code] = f"{name}.{attribute}"
        _QUALNAMES = ((threading, queue), names)
    return _QUALNAMES[1]
