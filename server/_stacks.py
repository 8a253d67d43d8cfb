"""Stacks of this process's threads, as listings and stops report them.

The frame walk and its guard are the core's (_core.frames: one lock, the GC
paused); this adds what only the host computes: what each innermost frame is
calling now (_bytecode), which needs `dis`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from threadctl._activity import WAIT_FRAMES, Judged, judge
from threadctl._bytecode import current_call
from threadctl._core.frames import MAX_DEPTH, Stack, frames_guarded, reset_after_fork, walk
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
    frame reference outlives the guard."""
    with frames_guarded():
        frames = sys._current_frames()
        try:
            if idents is not None:
                frames = {ident: frames[ident] for ident in set(idents) if ident in frames}
            return {ident: describe(frame) for ident, frame in frames.items()}
        finally:
            del frames


def _innermost_codes(frame: FrameType) -> list[CodeType]:
    codes: list[CodeType] = []
    walked: FrameType | None = frame
    while walked is not None and len(codes) < WAIT_FRAMES:
        codes.append(walked.f_code)
        walked = walked.f_back
    return codes


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset_after_fork)
