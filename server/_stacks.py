"""Stacks of this process's threads, as listings and stops report them.

The frame walk and its guard are the core's (_core.frames: one lock, the GC
paused); this adds what only the host computes: what each innermost frame is
calling now (_bytecode), which needs `dis`.
"""

from __future__ import annotations

import _thread
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from threadctl import _native
from threadctl._activity import WAIT_FRAMES, Judged, judge
from threadctl._bytecode import current_call
from threadctl._core.frames import (
    MAX_DEPTH,
    Stack,
    frame_of,
    frames_guarded,
    reset_after_fork,
    use_frame_finder,
    walk,
)
from threadctl._core.known_waits import tagger

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType, FrameType

# judge_threads' cache: (instruction, ids of the innermost frames' code
# objects) -> what they say, and those code objects (kept alive, so the ids
# stay theirs); valid while the tagger is the same (the same modules).
_judged: dict[tuple[int, ...], tuple[Judged, tuple[CodeType, ...]]] = {}
_judged_with: Callable[[CodeType], str] | None = None
_JUDGED_LIMIT = 4096

T = TypeVar("T")


def capture_stacks(
    idents: Iterable[int] | None = None, depth: int = MAX_DEPTH, *, lines: bool = True
) -> dict[int, Stack]:
    """Stacks of the given threads (all threads running Python code if None),
    keyed by ident, at most `depth` innermost frames each. Without `lines`,
    every line is 0 (only shown stacks need them).

    Threads that are not running Python code at the moment (or have exited)
    are absent from the result.
    """
    known_as = tagger()

    def stack(frame: FrameType) -> Stack:
        walked, truncated = walk(frame, depth, lines, known_as)
        return Stack(walked, truncated, current_call(frame.f_code, frame.f_lasti))

    return _over_frames(idents, stack)


def judge_threads(idents: Iterable[int] | None = None) -> dict[int, Judged]:
    """What each given thread running Python code is doing (all if None), as
    far as its frames tell (see _activity.judge), keyed by ident.

    For listings without stacks: no stack is kept, and the answer is cached
    per (innermost instruction, innermost frames' code objects), which is all
    it depends on, so a thread parked where it was last time costs a few
    attribute reads. The cache holds code objects (never frames), at most
    _JUDGED_LIMIT keys.
    """
    global _judged_with
    known_as = tagger()
    if known_as is not _judged_with or len(_judged) > _JUDGED_LIMIT:
        _judged.clear()  # concurrent listings: at worst, work done twice
        _judged_with = known_as

    def judged(frame: FrameType) -> Judged:
        codes = _innermost_codes(frame)
        # By the codes' ids (a code object's own hash is computed from its
        # contents at every call: too slow here); the entry keeps the code
        # objects alive, so the ids stay theirs.
        key = (frame.f_lasti, *map(id, codes))
        hit = _judged.get(key)
        if hit is None:
            walked, _ = walk(frame, WAIT_FRAMES, False, known_as)
            callee = current_call(frame.f_code, frame.f_lasti)
            hit = _judged[key] = (judge(walked, callee), tuple(codes))
        return hit[0]

    return _over_frames(idents, judged)


def _over_frames(idents: Iterable[int] | None, describe: Callable[[FrameType], T]) -> dict[int, T]:
    """describe(frame) of the current frame of each thread in `idents` (all
    if None) that runs Python code, by ident, inside frames_guarded(); no
    frame reference outlives the guard.

    Hazard: sys._current_frames() is called here, not in a helper, and
    `frames` is dropped before returning. The frame it holds for this thread
    is that of the function calling it: were the dict still among that
    function's locals when it returns, it would make a reference cycle
    (frame -> locals -> dict -> frame) that only the GC frees, and the GC
    stays paused for as long as listings overlap (four threads listing in a
    loop grew a host by 50 MB a second; tests/hosts/frame_cycles.py).
    """
    wanted = None if idents is None else set(idents)
    with frames_guarded():
        frames = _others_frames(wanted)
        if frames is None:
            frames = sys._current_frames()
            if wanted is not None:
                frames = {ident: frames[ident] for ident in wanted if ident in frames}
        try:
            return {ident: describe(frame) for ident, frame in frames.items()}
        finally:
            del frames


_FEW = 16  # threads to look up one by one rather than all at once


def _others_frames(wanted: set[int] | None) -> dict[int, FrameType] | None:
    """The current frames of a few other threads, `wanted`, one by one
    (frame_of: natively, one thread's frame where sys._current_frames()
    builds every thread's); None for more than _FEW, or with this thread
    among them (its frame would be this function's, whose locals hold the
    answer: the cycle _over_frames explains). Each thread the native lookup
    does not find costs one sys._current_frames() (frame_of's fallback):
    rare, and at most _FEW. Call inside frames_guarded()."""
    if wanted is None or len(wanted) > _FEW or _thread.get_ident() in wanted:
        return None
    found = {}
    for ident in wanted:
        frame = frame_of(ident)
        if frame is not None:
            found[ident] = frame
    return found


def _innermost_codes(frame: FrameType) -> list[CodeType]:
    codes: list[CodeType] = []
    walked: FrameType | None = frame
    while walked is not None and len(codes) < WAIT_FRAMES:
        codes.append(walked.f_code)
        walked = walked.f_back
    return codes


use_frame_finder(_native.thread_frame_finder)  # for landing's lookups too
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset_after_fork)
