"""Forced stops: raise threadctl.ForcedStop inside another thread, safely.

PyThreadState_SetAsyncExc queues an exception that the target raises the next
time it runs Python bytecode. Three hazards shape this module:

- Python reuses idents at once, so the ident must still belong to the same
  live thread object at the moment of injection. The check and the injection
  happen while holding `threading`'s own registry lock: a thread cannot
  finish exiting (and free its ident) while we hold it.
- An exception raised inside a `finally` or `__exit__` aborts that cleanup.
  `critical()` blocks defer the exception until they end; a forced stop queued
  just as a thread enters such a block is taken back (SetAsyncExc with NULL)
  and re-raised when the block ends.
- The exception must be a class (an instance becomes SystemError in the
  target), and only threads started by `threading` are forced: a C-started
  thread may keep its thread state across unrelated calls into Python.
"""

from __future__ import annotations

import ctypes
import threading
import time
from types import TracebackType

from threadctl import _audit
from threadctl._registry import ForceState, ThreadState, registry
from threadctl.errors import ProtectedThread, ThreadNotFound, ThreadStopped

_SetAsyncExc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_ClearAsyncExc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


class ForcedStop(ThreadStopped):
    """Raised inside a thread by a forced stop (threadctl stop --force).

    Derives from BaseException (through ThreadStopped), so `except Exception:`
    does not swallow it; `finally` and `with` blocks run as it unwinds. A
    thread that dies of it ends quietly: no traceback on stderr.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args or ("forced stop",))
        # Runs in the target thread when the exception is raised there (on
        # 3.10/3.11 possibly later: when the first handler catches it).
        state = registry.peek_current()
        if state is not None and state.force in (ForceState.PENDING, ForceState.DEFERRED):
            state.force = ForceState.DELIVERED
            state.force_delivered_at = time.time()
            state.delivered.set()


def force(thread: threading.Thread, state: ThreadState) -> bool:
    """Send a forced stop to `thread`. Returns False if one was already sent.

    Raises:
        ProtectedThread: the thread cannot be forced (not started by
            `threading`, or it is the calling thread).
        ThreadNotFound: the thread exited before the exception could be queued.
    """
    if isinstance(thread, threading._DummyThread):
        raise ProtectedThread(
            f"thread {thread.name!r} was not started by `threading`; it can only be stopped"
            " cooperatively"
        )
    if thread is threading.current_thread():
        raise ProtectedThread("a thread cannot force-stop itself; raise threadctl.ThreadStopped")
    install_quiet_excepthook()
    with state.lock:
        if state.force is not ForceState.NONE:
            return False
        state.forced_at = time.time()
        if state.critical_marks:
            state.force = ForceState.DEFERRED
            return True
        # PENDING before the injection: the target may raise the exception
        # (and mark it delivered) as soon as this thread lets go of the GIL.
        state.force = ForceState.PENDING
        # Holding threading's registry lock, the thread cannot finish exiting,
        # so its ident cannot pass to a new thread between check and injection.
        with threading._active_limbo_lock:  # type: ignore[attr-defined]
            active = threading._active  # type: ignore[attr-defined]
            alive = active.get(thread.ident) is thread and thread.is_alive()
            sent = _SetAsyncExc(thread.ident, ForcedStop) if alive else 0
            if sent > 1:  # never expected: take it back everywhere
                _ClearAsyncExc(thread.ident, None)
        if sent != 1:
            state.force = ForceState.NONE
            state.forced_at = 0.0
            raise ThreadNotFound(f"thread {thread.ident} exited before the stop could be sent")
    return True


class CriticalSection:
    """A block in which a forced stop is deferred until the block ends.

    Use for code that an exception in the middle would leave corrupt: updating
    two structures together, or a cleanup that must finish. Nesting works; the
    deferred stop is raised when the outermost block ends. A cooperative stop
    is not affected (the thread reads its flag when it wants).
    """

    def __init__(self) -> None:
        self._state: ThreadState | None = None
        self._mark = object()

    def __enter__(self) -> CriticalSection:
        state = self._state = registry.state_of(threading.current_thread())
        try:
            state.critical_marks.append(self._mark)
            with state.lock:
                if state.force is ForceState.PENDING:
                    # Queued just before we entered and not raised yet: take it
                    # back, and raise it when the section ends instead.
                    _ClearAsyncExc(threading.get_ident(), None)
                    state.force = ForceState.DEFERRED
        except BaseException:
            # The forced stop arrived during entry: the section never started.
            if state.critical_marks and state.critical_marks[-1] is self._mark:
                state.critical_marks.pop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._state
        if state is None:
            return
        if self._mark in state.critical_marks:
            state.critical_marks.remove(self._mark)
        if state.critical_marks:
            return
        with state.lock:
            deferred = state.force is ForceState.DEFERRED
        if deferred:
            raise ForcedStop("forced stop (deferred until the critical section ended)")


def critical() -> CriticalSection:
    """`with threadctl.critical():` defers forced stops until the block ends."""
    return CriticalSection()


_previous_excepthook = None


def install_quiet_excepthook() -> None:
    """Let threads that die of a stop exception end without a traceback.

    Chains to the hook that was there before for every other exception. If
    the host replaces threading.excepthook later, its hook sees our
    exceptions too; nothing else changes.
    """
    global _previous_excepthook
    if threading.excepthook is _quiet_excepthook:
        return
    _previous_excepthook = threading.excepthook
    threading.excepthook = _quiet_excepthook


def _quiet_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is not None and issubclass(args.exc_type, ThreadStopped):
        _audit.thread_ended(args.thread, forced=issubclass(args.exc_type, ForcedStop))
        return
    (_previous_excepthook or threading.__excepthook__)(args)
