"""Stacks of this process's threads, as listings and stops report them.

The frame walk and its guard are the core's (_core.frames: one lock, the GC
paused); this adds what only the host computes: what each innermost frame is
calling now (_bytecode), which needs `dis`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from threadctl._bytecode import current_call
from threadctl._core.frames import MAX_DEPTH, Stack, frames_guarded, reset_after_fork, walk
from threadctl._core.known_waits import tagger


def capture_stacks(
    idents: Iterable[int] | None = None, depth: int = MAX_DEPTH, *, lines: bool = True
) -> dict[int, Stack]:
    """Stacks of the given threads (all threads running Python code if None),
    keyed by ident, at most `depth` innermost frames each. Without `lines`,
    every line is 0 (only shown stacks need them).

    Threads that are not running Python code at the moment (or have exited)
    are absent from the result.
    """
    wanted = None if idents is None else set(idents)
    known_as = tagger()
    stacks = {}
    with frames_guarded():
        frames = sys._current_frames()
        try:
            for ident, frame in frames.items():
                if wanted is None or ident in wanted:
                    walked, truncated = walk(frame, depth, lines, known_as)
                    callee = current_call(frame.f_code, frame.f_lasti)
                    stacks[ident] = Stack(walked, truncated, callee)
        finally:
            del frames, frame
    return stacks


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset_after_fork)
