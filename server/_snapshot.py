"""Thread records: one consistent description of each live thread.

Plain data, no gRPC: the servicer turns these into protobuf messages and the
in-process API returns them as they are.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from threadctl import _force
from threadctl._activity import Activity, Judged, decide, judge
from threadctl._core.frames import EMPTY, FrameInfo, Stack
from threadctl._core.procfs import is_alive, native_id_of, thread_cpu_seconds, thread_state
from threadctl._registry import ForceState, registry
from threadctl._stacks import capture_stacks, judge_threads

# What a thread without Python frames (or an exited one) looks like.
NO_FRAMES = judge(EMPTY.frames, EMPTY.callee)


class ThreadSnapshot(NamedTuple):
    """What ListThreads/GetThread report for one thread.

    `partial` records describe threads that run Python code but are unknown
    to `threading` (started from C): only ident, stack and activity are known.

    A named tuple, not a dataclass: a listing builds one per thread, and
    comparing one with the last listing's (the RPC layer reuses the encoded
    record of an equal one) is a tuple comparison in C.
    """

    ident: int
    native_id: int = 0
    identity: str = ""
    name: str = ""
    daemon: bool = False
    main: bool = False
    protected: bool = False
    cooperative: bool = False
    stop_requested: bool = False
    stop_reason: str = ""
    stop_requested_at: float = 0.0
    cpu_seconds: float | None = None
    stack: Stack | None = None
    in_critical_section: bool = False
    force: ForceState = ForceState.NONE
    forced_at: float = 0.0
    force_delivered_at: float = 0.0
    blocked_in: FrameInfo | None = None  # innermost frame while a forced stop is pending
    force_waits_in: str = ""  # what a deferred forced stop waits for the thread to leave
    activity: Activity = Activity.UNKNOWN
    activity_detail: str = ""
    kernel_state: str = ""
    partial: bool = False


def live_threads() -> dict[int, threading.Thread]:
    """Live threads by ident (threads known to the threading module)."""
    return {t.ident: t for t in threading.enumerate() if t.ident is not None and is_alive(t)}


def snapshot(
    thread: threading.Thread,
    stack: Stack | None = None,
    with_stack: bool = False,
    alive: bool | None = None,
) -> ThreadSnapshot:
    """Describe one thread (assigning it an identity on first sight).

    Args:
        stack: the thread's stack if already captured (else its innermost
            frames are judged here).
        with_stack: report the stack (else it only serves to classify).
        alive: whether the thread runs, if the caller knows.
    """
    ident = thread.ident or 0
    alive = is_alive(thread) if alive is None else alive
    if stack is not None:
        judged = judge(stack.frames, stack.callee)
    elif alive:
        judged = judge_threads([ident]).get(ident, NO_FRAMES)
    else:  # an exited thread (the answer to a stop) has no frames to judge
        judged = NO_FRAMES
    return describe(thread, judged, stack if with_stack else None, alive)


def describe(
    thread: threading.Thread, judged: Judged, stack: Stack | None, alive: bool
) -> ThreadSnapshot:
    """The record of `thread`, whose frames say `judged`, with `stack` shown if given."""
    ident = thread.ident or 0
    state = registry.state_of(thread)
    native_id = native_id_of(thread)
    kernel_state = ""

    def read_kernel_state() -> str:
        nonlocal kernel_state
        kernel_state = thread_state(native_id) if alive else ""
        return kernel_state

    activity, detail = decide(judged, read_kernel_state)
    forced = state.forced
    if forced is not None and forced.state is ForceState.DELIVERED and alive:
        forced = _force.settle(thread, state)  # caught (a pool worker goes on): over
    force = ForceState.NONE if forced is None else forced.state
    blocked_in = None
    if force is ForceState.PENDING and alive:  # blocked_in shows a line: capture with lines
        shown = stack if stack is not None else capture_stacks([ident], depth=1).get(ident, EMPTY)
        blocked_in = shown.frames[-1] if shown.frames else None
    return ThreadSnapshot(
        ident=ident,
        native_id=native_id,
        identity=state.identity,
        name=thread.name,
        daemon=thread.daemon,
        main=thread is threading.main_thread(),
        protected=state.protected,
        cooperative=state.cooperative,
        stop_requested=state.stop_is_requested,
        stop_reason=state.stop_reason,
        stop_requested_at=state.stop_requested_at,
        cpu_seconds=thread_cpu_seconds(native_id) if alive else None,
        stack=stack,
        in_critical_section=bool(state.critical_marks),
        force=force,
        forced_at=0.0 if forced is None else forced.forced_at,
        force_delivered_at=0.0 if forced is None else forced.delivered_at,
        blocked_in=blocked_in,
        force_waits_in=forced.waits_in if forced is not None else "",
        activity=activity,
        activity_detail=detail,
        kernel_state=kernel_state,
    )


def snapshot_all(include_stacks: bool = False) -> list[ThreadSnapshot]:
    """Describe every thread that runs Python code, with stacks if asked.

    Threads unknown to `threading` come last, as partial records.
    """
    threads = live_threads()
    seen: dict[int, tuple[Judged, Stack | None]]
    if include_stacks:
        stacks = capture_stacks()
        seen = {ident: (judge(s.frames, s.callee), s) for ident, s in stacks.items()}
    else:
        seen = {ident: (judged, None) for ident, judged in judge_threads().items()}
    records = [
        describe(t, *seen.get(ident, (NO_FRAMES, EMPTY if include_stacks else None)), True)
        for ident, t in threads.items()
    ]
    for ident, (judged, stack) in seen.items():
        if ident not in threads:
            activity, detail = decide(judged, str)
            records.append(
                ThreadSnapshot(
                    ident=ident,
                    stack=stack,
                    activity=activity,
                    activity_detail=detail,
                    partial=True,
                )
            )
    return records


def snapshot_with_stack(thread: threading.Thread) -> ThreadSnapshot:
    """Describe one thread, with its stack."""
    ident = thread.ident or 0
    return snapshot(thread, capture_stacks([ident]).get(ident, EMPTY), with_stack=True)
