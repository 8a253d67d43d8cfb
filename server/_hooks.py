"""Stop hooks: what wakes a thread that neither a flag nor an exception can reach.

A thread blocked in a socket read or in a wait on someone else's condition
does not look at its stop flag, and a forced stop stays pending while it is
blocked in C. A stop hook (like Java's interruptible channels) acts for it:
close the socket it reads, put a sentinel on its queue.

Hooks run in the thread that requests the stop, on a helper thread with a
time limit, so a hook that blocks never holds up the control server. The
wakers of stop-aware waits run inline: each only notifies a condition, taking
its lock with a timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from threadctl import _os_names
from threadctl._registry import ThreadState, registry

logger = logging.getLogger("threadctl")

HOOK_TIME_LIMIT = 2.0
WAKER_LOCK_TIMEOUT = 1.0


class StopHook:
    """A registered stop hook; `remove()` it, or use it as a context manager
    so it only covers the blocking section."""

    def __init__(self, state: ThreadState, callback: Callable[[], object]) -> None:
        self._state = state
        self.callback = callback

    def remove(self) -> None:
        """Unregister the hook (no effect if it already ran)."""
        with self._state.lock:
            if self in self._state.hooks:
                self._state.hooks.remove(self)

    def __enter__(self) -> StopHook:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def on_stop(callback: Callable[[], object]) -> StopHook:
    """Run `callback` once when a stop (cooperative or forced) is requested
    for the calling thread, e.g. `lambda: sock.shutdown(socket.SHUT_RDWR)`
    for a thread blocked in recv (on Linux, `sock.close` does not wake it).

    The callback runs in the thread that requests the stop (not in this one),
    and must be quick: after 2 s threadctl stops waiting for it. An exception
    in it is logged to the `threadctl` logger and does not prevent the stop.
    If a stop was already requested, the callback runs at once, here.
    """
    state = registry.current()
    hook = StopHook(state, callback)
    with state.lock:
        if not state.stop_is_requested:
            state.hooks.append(hook)
            return hook
    _call(hook.callback)
    return hook


def run_stop_hooks(state: ThreadState) -> None:
    """Wake the thread's stop-aware wait and run its stop hooks (once each)."""
    with state.lock:
        wakers = list(state.wakers)
        hooks, state.hooks = state.hooks, []
    for waker in wakers:
        _call(waker)
    if not hooks:
        return
    runner = threading.Thread(
        target=_run_hooks, args=(hooks,), name="threadctl-stop-hooks", daemon=True
    )
    _os_names.start_own(runner)
    runner.join(HOOK_TIME_LIMIT)
    if runner.is_alive():
        logger.warning(
            "threadctl: stop hooks of thread %r still running after %.0f s; not waiting longer",
            getattr(state.thread_ref(), "name", "?"),
            HOOK_TIME_LIMIT,
        )


def notify_waker(condition: threading.Condition) -> Callable[[], None]:
    """A waker that wakes the waiters of `condition` (they re-check their stop flag)."""

    def wake() -> None:
        if condition.acquire(timeout=WAKER_LOCK_TIMEOUT):
            try:
                condition.notify_all()
            finally:
                condition.release()
        else:
            logger.warning("threadctl: could not wake a stop-aware wait (its lock is held)")

    return wake


def _run_hooks(hooks: list[StopHook]) -> None:
    for hook in hooks:
        _call(hook.callback)


def _call(callback: Callable[[], object]) -> None:
    try:
        callback()
    except Exception:
        logger.exception("threadctl: stop hook %r failed", callback)
