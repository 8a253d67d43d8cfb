"""Thread records: one consistent description of each live thread.

Plain data, no gRPC: the servicer turns these into protobuf messages and the
in-process API returns them as they are.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from threadctl._cpu import thread_cpu_seconds
from threadctl._registry import ForceState, registry
from threadctl._stacks import FrameInfo, Stack, capture_stacks


@dataclass(frozen=True)
class ThreadSnapshot:
    """What ListThreads/GetThread report for one thread."""

    ident: int
    native_id: int
    identity: str
    name: str
    daemon: bool
    main: bool
    protected: bool
    cooperative: bool
    stop_requested: bool
    stop_reason: str
    stop_requested_at: float
    cpu_seconds: float | None
    stack: Stack | None
    in_critical_section: bool
    force: ForceState
    forced_at: float
    force_delivered_at: float
    blocked_in: FrameInfo | None  # innermost frame while a forced stop is pending


def is_alive(thread: threading.Thread) -> bool:
    """Whether `thread` is still running, also for threads started outside `threading`.

    Those appear as dummy thread objects whose is_alive() is always True and
    which `threading` may keep after the thread ended, so ask the kernel.
    """
    if isinstance(thread, threading._DummyThread):
        return os.path.exists(f"/proc/self/task/{thread.native_id}")
    return thread.is_alive()


def live_threads() -> dict[int, threading.Thread]:
    """Live threads by ident (threads known to the threading module)."""
    return {t.ident: t for t in threading.enumerate() if t.ident is not None and is_alive(t)}


def snapshot(
    thread: threading.Thread, stack: Stack | None = None, with_stack: bool = False
) -> ThreadSnapshot:
    """Describe one live thread (assigning it an identity on first sight).

    Args:
        stack: the thread's stack if already captured.
        with_stack: report the stack (None: leave it out of the record).
    """
    state = registry.state_of(thread)
    native_id = thread.native_id or 0
    force = state.force
    if stack is None and force is ForceState.PENDING:
        stack = capture_stacks([thread.ident or 0]).get(thread.ident or 0)
    blocked_in = (
        stack.frames[-1] if force is ForceState.PENDING and stack and stack.frames else None
    )
    return ThreadSnapshot(
        ident=thread.ident or 0,
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
        cpu_seconds=thread_cpu_seconds(native_id),
        stack=(stack or Stack((), False)) if with_stack else None,
        in_critical_section=bool(state.critical_marks),
        force=force,
        forced_at=state.forced_at,
        force_delivered_at=state.force_delivered_at,
        blocked_in=blocked_in,
    )


def snapshot_all(include_stacks: bool = False) -> list[ThreadSnapshot]:
    """Describe every live thread, with stacks if asked."""
    threads = live_threads()
    stacks = capture_stacks(threads) if include_stacks else {}
    return [snapshot(t, stacks.get(ident), include_stacks) for ident, t in threads.items()]


def snapshot_with_stack(thread: threading.Thread) -> ThreadSnapshot:
    """Describe one thread, with its stack."""
    ident = thread.ident or 0
    return snapshot(thread, capture_stacks([ident]).get(ident), with_stack=True)
