"""What threadctl knows about each thread beyond what `threading` knows.

One `ThreadState` per thread object: its never-reused identity, its stop flag,
whether it cooperates, whether it is protected. States are keyed by ident but
always checked against the thread object they were made for, because Python
hands an exited thread's ident to the next new thread: a state (and a stop
request) must never carry over to that new thread.

Thread-side code reaches its own state through a thread-local cache, so
`stop_requested()` costs a few attribute lookups and no lock.
"""

from __future__ import annotations

import enum
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from threadctl._core.landing import Landing
    from threadctl._hooks import StopHook


class ForceState(enum.Enum):
    """Where a forced stop of a thread stands."""

    NONE = "none"
    DEFERRED = "deferred"  # waits to land: critical section, or protected code (see _landing)
    PENDING = "pending"  # exception queued, not raised yet (thread blocked in C)
    DELIVERED = "delivered"  # exception raised in the thread, which is handling it


@dataclass(eq=False)
class ForceEpisode:
    """One forced stop of one thread, from the request until it is over.

    A stop request is an episode: it ends when the thread exits, when the
    thread has caught the exception and goes on (a pool worker whose task it
    ended: "task_ended"), or when the code it was meant for finished before it
    could land ("moved_on"). Then the thread is as if never asked, and a new
    request can force it again. `changed` is set at delivery and at the end.
    """

    forced_at: float
    state: ForceState = ForceState.DEFERRED
    # Where it may land while deferred by protected code (see _landing); the
    # landing holds a frame of the thread, so it is dropped once sent or over.
    landing: Landing | None = None
    waits_in: str = ""  # what it waits for while deferred, for the operator
    delivered_at: float = 0.0
    ended: str = ""  # "", "task_ended", "moved_on"
    changed: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False, slots=True)
class ThreadState:
    """threadctl's bookkeeping for one thread object.

    One per tracked thread (10,000 threads: 10,000 states), so slots, and the
    Event a stop-aware sleep waits on is made only when a thread first
    sleeps on it (an Event is about 1 KiB; most threads never sleep on it).
    """

    identity: str
    thread_ref: weakref.ref[threading.Thread]
    cooperative: bool = False
    protected: bool = False
    # The stop request: flag, reason, time (written holding `lock`).
    stop_is_requested: bool = False
    stop_reason: str = ""
    stop_requested_at: float = 0.0
    # `lock` guards the stop request (flag, reason, forced stop) and orders
    # the injector against the thread entering and leaving critical sections;
    # `critical_marks` holds one marker per open threadctl.critical() block
    # (appending is one C call, so a forced stop arriving mid-way can never
    # leave the count half-updated).
    lock: threading.Lock = field(default_factory=threading.Lock)
    critical_marks: list[object] = field(default_factory=list)
    forced: ForceEpisode | None = None  # the forced stop in progress, if any
    # Callbacks run when a stop is requested: `hooks` are the application's
    # (threadctl.on_stop, run once), `wakers` wake the thread's current
    # stop-aware wait (threadctl.wait, get, wait_for).
    hooks: list[StopHook] = field(default_factory=list)
    wakers: list[Callable[[], object]] = field(default_factory=list)
    _stop_event: threading.Event | None = None  # see stop_event

    @property
    def force(self) -> ForceState:
        forced = self.forced
        return ForceState.NONE if forced is None else forced.state

    def stop_event(self) -> threading.Event:
        """An Event set while a stop is requested, made on first use, for
        threads to wait on (threadctl.sleep)."""
        with self.lock:
            if self._stop_event is None:
                self._stop_event = threading.Event()
                if self.stop_is_requested:
                    self._stop_event.set()
            return self._stop_event

    def set_stop_locked(self, reason: str) -> bool:
        """Set the stop flag (holding `lock`); True if it was set already.
        The first request's reason and time are kept."""
        already = self.stop_is_requested
        if not already:
            self.stop_reason = reason
            self.stop_requested_at = time.time()
            self.stop_is_requested = True
            if self._stop_event is not None:
                self._stop_event.set()
        return already

    def forget_stop_locked(self) -> None:
        """The stop request is over (holding `lock`): as if never asked."""
        self.stop_is_requested = False
        if self._stop_event is not None:
            self._stop_event.clear()
        self.stop_reason = ""
        self.stop_requested_at = 0.0
        self.forced = None


class Registry:
    """The process-wide table of thread states.

    Memory stays bounded under thread churn: states of threads that are gone
    are dropped whenever the table grows past twice the live thread count.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[int, ThreadState] = {}
        self._serial = 0
        # A per-process suffix makes an identity from another process (or from
        # before a fork) fail the precondition instead of matching by chance.
        self._instance = secrets.token_hex(4)
        self._local = threading.local()
        # threads protected before they started (see protect)
        self._protect_at_start: weakref.WeakSet[threading.Thread] = weakref.WeakSet()

    def state_of(self, thread: threading.Thread) -> ThreadState:
        """The state of a live `thread`, created on first use."""
        ident = thread.ident
        if ident is None:
            raise ValueError(f"thread {thread.name!r} has not started")
        # The common case takes no lock (a listing asks for every thread's):
        # a dict read is atomic, and a state is only ever replaced, never
        # changed to another thread's.
        state = self._states.get(ident)
        if state is not None and state.thread_ref() is thread:
            return state
        with self._lock:
            state = self._states.get(ident)
            if state is not None and state.thread_ref() is thread:
                return state
            self._serial += 1
            fresh = ThreadState(
                identity=f"{self._serial}.{self._instance}",
                thread_ref=weakref.ref(thread),
                protected=thread in self._protect_at_start,
            )
            holder = state.thread_ref() if state is not None else None
            if holder is not None and holder.is_alive() and not thread.is_alive():
                # `thread` has exited and its ident belongs to a newer thread:
                # never take that thread's state away from it.
                return fresh
            if len(self._states) > 2 * threading.active_count() + 64:
                self._prune_locked()
            self._states[ident] = fresh
            return fresh

    def peek_current(self) -> ThreadState | None:
        """The calling thread's state if it has one; takes no lock.

        Safe to call while a stop exception is being raised in this thread,
        which may happen while it holds the registry lock.
        """
        thread = threading.current_thread()
        state = self._states.get(threading.get_ident())
        return state if state is not None and state.thread_ref() is thread else None

    def current(self) -> ThreadState:
        """The calling thread's state; marks the thread as cooperative."""
        state: ThreadState | None = getattr(self._local, "state", None)
        if state is None:
            state = self.state_of(threading.current_thread())
            state.cooperative = True
            self._local.state = state
        return state

    def protect(self, thread: threading.Thread) -> None:
        """Mark `thread` as one that must never be stopped.

        Call it before `thread.start()`: a thread protected from inside, or
        after start() returned, is listed for a moment as one that may be
        stopped (and stop_all could pick it then).
        """
        if thread.ident is None:
            with self._lock:
                self._protect_at_start.add(thread)
            return
        self.state_of(thread).protected = True

    def request_stop(self, state: ThreadState, reason: str) -> bool:
        """Set the stop flag of `state`. Returns True if it was already set.

        The first request's reason and time are kept.
        """
        with state.lock:
            return state.set_stop_locked(reason)

    def clear_stop(self, state: ThreadState) -> None:
        """Forget a handled stop, so the thread can take new work."""
        with state.lock:
            state.forget_stop_locked()

    def _prune_locked(self) -> None:
        live = {t.ident for t in threading.enumerate()}
        for ident in [
            i for i, s in self._states.items() if i not in live or s.thread_ref() is None
        ]:
            del self._states[ident]

    def forget_all_after_fork(self) -> None:
        """In a forked child only the forking thread survives; start afresh."""
        self._lock = threading.Lock()
        self._states = {}
        self._instance = secrets.token_hex(4)
        self._local = threading.local()


registry = Registry()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=registry.forget_all_after_fork)
