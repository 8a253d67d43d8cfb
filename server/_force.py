"""Forced stops: raise threadctl.ForcedStop inside another thread, safely.

PyThreadState_SetAsyncExc queues an exception that the target raises the next
time it runs Python bytecode. The hazards that shape this module:

- Python reuses idents at once, so the ident must still belong to the same
  live thread object at the moment of injection. The check and the injection
  happen while holding `threading`'s own registry lock: a thread cannot
  finish exiting (and free its ident) while we hold it.
- Where the exception lands matters: inside the standard library's lock
  wrappers it leaves locks held, in code the thread started after the request
  it hits the wrong task. _core.landing decides where it may land; a stop that
  cannot land yet is *deferred* and a protected `threadctl-force` thread
  lands it when the thread gets there (or ends it if the code it was meant
  for finished first).
- An exception raised inside a `finally` or `__exit__` of the application
  aborts that cleanup. `critical()` blocks defer the exception until they
  end; a forced stop queued just as a thread enters such a block is taken
  back (SetAsyncExc with NULL) and raised when the block ends.
- A stop request is an episode (_registry.ForceEpisode): once the thread has
  caught the exception and goes on (a pool worker), or the code it was meant
  for finished, the request is over and a new one can force the thread again.
- The exception must be a class (an instance becomes SystemError in the
  target), and only threads started by `threading` are forced: a C-started
  thread may keep its thread state across unrelated calls into Python.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType, TracebackType
from typing import TypeVar

from threadctl import _audit, _history, _native, _os_names
from threadctl._core import futures, quiet, traps
from threadctl._core.frames import frames_guarded
from threadctl._core.landing import (
    CALLED_ON,
    GONE,
    NOT_NOW,
    SENT,
    Landing,
    NoLandingPlace,
    caught,
    moved_on,
    observe,
    position,
    protect_package,
    send,
)
from threadctl._registry import ForceEpisode, ForceState, ThreadState, registry
from threadctl._switching import short_interval
from threadctl.errors import ProtectedThread, TaskStopped, ThreadNotFound, ThreadStopped

_ClearAsyncExc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_CRITICAL_SECTION = "it leaves its critical section"
_BETWEEN_ITEMS = (
    "its loop is done with the item it has (the stop flag ends the loop before the next)"
)
# Code of loops that a stop flag ends between items (see stop_loop).
_STOP_LOOPS: set[CodeType] = set()
_Function = TypeVar("_Function", bound=Callable[..., object])
protect_package(os.path.dirname(os.path.abspath(__file__)), "threadctl")


class ForcedStop(ThreadStopped):
    """Raised inside a thread by a forced stop (threadctl stop --force).

    Derives from BaseException (through ThreadStopped), so `except Exception:`
    does not swallow it; `finally` and `with` blocks run as it unwinds. A
    thread that dies of it ends quietly: no traceback on stderr. If it leaves
    the thread through a concurrent.futures.Future (a pool task), the future
    fails with threadctl.TaskStopped instead, an ordinary Exception.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args or ("forced stop",))
        # Runs in the target thread when the exception is raised there (on
        # 3.10/3.11 possibly later: when the first handler catches it). Plain
        # attribute writes, no lock: the thread may be anywhere.
        state = registry.peek_current()
        forced = state.forced if state is not None else None
        if forced is not None and forced.state in (ForceState.PENDING, ForceState.DEFERRED):
            forced.state = ForceState.DELIVERED
            forced.delivered_at = time.time()
            forced.landing = None
            forced.changed.set()


def force(
    thread: threading.Thread,
    state: ThreadState,
    reason: str,
    within: list[FrameType] | None = None,
) -> ForceEpisode | None:
    """Start a forced stop of `thread` and set its stop flag. Returns the new
    episode, or None if one is still in progress (the caller reports that one).

    `within` (outermost first) confines the stop to those frames, for an
    asyncio task that holds its loop: it lands only while one of them runs
    (the task's coroutine, or what it calls), never in the loop's own code
    or another task; once none runs (the task awaited), the stop is over.

    Raises:
        ProtectedThread: the thread cannot be forced (not started by
            `threading`, the calling thread, or it runs only protected code).
        ThreadNotFound: the thread exited before the exception could be queued.
    """
    if isinstance(thread, threading._DummyThread):
        raise ProtectedThread(
            f"thread {thread.name!r} was not started by `threading`; it can only be stopped"
            " cooperatively"
        )
    if thread is threading.current_thread():
        raise ProtectedThread("a thread cannot force-stop itself; raise threadctl.ThreadStopped")
    prepare()
    with state.lock:
        current = state.forced
        if current is not None and _over_locked(thread, state, current):
            current = None
        if current is not None and current.landing is None:
            return None  # pending, delivered, or waiting for a critical section: nothing new
        # A new stop, or one still deferred by protected code: look again, so
        # a thread that left the wait it was in can be stopped where it is now.
        episode = current or ForceEpisode(forced_at=time.time())
        if state.critical_marks:
            episode.landing, episode.waits_in = None, _CRITICAL_SECTION
        else:
            try:
                episode.landing = _observe(thread, within)
            except ProtectedThread:
                if current is not None:
                    return None  # keep the stop deferred as it was
                if not _in_stop_loop(thread):
                    raise
                episode.waits_in = _BETWEEN_ITEMS
            else:
                episode.waits_in = _waits_text(episode.landing)
        # Recorded before sending: the target may raise the exception (and
        # mark it delivered) as soon as this thread lets go of the GIL, which
        # may be at any bytecode after the send (see _send).
        state.forced = episode
        if episode.landing is not None:
            landed = _send(thread, episode, episode.landing)
            if landed == GONE:
                state.forced = None
                raise ThreadNotFound(f"thread {thread.ident} exited before the stop could be sent")
            if landed == SENT:
                episode.landing, episode.waits_in = None, ""
        if current is not None and episode.state is ForceState.DEFERRED:
            return None  # looked again, still deferred: the earlier request stands
        # Flag after the exception, in the same locked step: the exception
        # lands where the thread is now, instead of letting it run on to a
        # stop check, and a pool that ends the task at once (stop_left_thread,
        # which takes this lock) clears a flag that is already set.
        state.set_stop_locked(reason)
        deferred = episode.landing is not None
    if deferred:
        _set_trap(thread, state, episode)  # before the lander can end the stop
        _lander.add(thread, state, episode)
    return episode


def _send(thread: threading.Thread, episode: ForceEpisode, landing: Landing) -> str:
    """send() ForcedStop to `thread` for `episode` (holding the state's lock).

    The episode is PENDING *before* the exception is queued: the thread may
    raise it, and ForcedStop() mark it DELIVERED, at any bytecode after the
    send, before this thread runs its next line (with a short switch
    interval, often). Setting PENDING after the send overwrote that
    DELIVERED: the stop of a pool worker that caught it was then never seen
    to be over (force_pending for good)."""
    episode.state = ForceState.PENDING
    landed = GONE
    try:
        landed = send(thread, landing, ForcedStop)
    finally:
        if landed != SENT:
            episode.state = ForceState.DEFERRED  # nothing was queued (also if send raised)
    return landed


def _set_trap(thread: threading.Thread, state: ThreadState, episode: ForceEpisode) -> None:
    """Where queuing cannot be safe (CPython 3.13+), have the thread raise the
    stop itself at the next line of its task (see _core.traps)."""
    landing = episode.landing
    if landing is None or not traps.AVAILABLE:
        return

    def spring() -> type[BaseException] | None:
        with state.lock:
            if state.forced is not episode or episode.landing is None:
                return None  # landed, or over, meanwhile
            if state.critical_marks:  # raised when the section ends (CriticalSection)
                episode.landing, episode.waits_in = None, _CRITICAL_SECTION
                return None
            episode.landing, episode.waits_in = None, ""
            episode.state = ForceState.PENDING  # ForcedStop() marks it delivered
        return ForcedStop

    traps.arm(episode, thread.ident or 0, landing.task, spring)


def settle(thread: threading.Thread, state: ThreadState) -> ForceEpisode | None:
    """The thread's forced stop in progress, after ending it if it is over
    (caught by the thread, or the code it was meant for has finished)."""
    with state.lock:
        forced = state.forced
        if forced is not None and _over_locked(thread, state, forced):
            return None
        return forced


def stop_left_thread() -> None:
    """A stop exception of the calling thread was stored in a Future: the
    task it ended is over, and so is the thread's stop request (the thread is
    a pool worker that goes on to its next task)."""
    state = registry.peek_current()
    if state is None:
        return
    with state.lock:
        forced = state.forced
        if forced is not None:
            _end_locked(state, forced, "task_ended")
        elif state.stop_is_requested:
            state.forget_stop_locked()  # a cooperative stop (check_stop) ended the task


def _observe(thread: threading.Thread, within: list[FrameType] | None = None) -> Landing:
    try:
        landing = observe(thread.ident or 0)
    except NoLandingPlace as error:
        raise ProtectedThread(
            f"thread {thread.name!r} cannot be forced now: {error}; nothing was stopped"
        ) from None
    except LookupError:
        raise ThreadNotFound(
            f"thread {thread.ident} exited before the stop could be sent"
        ) from None
    if within is None:
        return landing
    task = [frame for frame in within if frame in landing.task]
    if not task:
        raise ProtectedThread(
            f"thread {thread.name!r} no longer runs the code the stop was meant for; nothing"
            " was stopped"
        )
    return Landing(landing.ident, task, landing.descendants_ok, landing.waits_in)


def stop_loop(function: _Function) -> _Function:
    """Declare `function` a loop that its thread's stop flag ends between
    items (consume()), with critical() around the steps an exception must not
    split. A forced stop of a thread in it, or about to run it, at a moment
    when no frame of a task is on its stack (between items, or in the few
    bytecodes between two critical sections) then waits for the loop, as in
    a critical section, instead of being refused as if the thread were an
    idle pool worker: the flag ends the loop before it takes the next item."""
    _STOP_LOOPS.add(function.__code__)
    return function


def _in_stop_loop(thread: threading.Thread) -> bool:
    # Thread keeps its target until run() returns: a thread that has not
    # reached the loop's first line yet counts too.
    target = getattr(thread, "_target", None)
    if getattr(target, "__code__", None) in _STOP_LOOPS:
        return True
    with frames_guarded():
        frame = sys._current_frames().get(thread.ident or 0)
        try:
            while frame is not None:
                if frame.f_code in _STOP_LOOPS:
                    return True
                frame = frame.f_back
        finally:
            del frame
    return False


def _waits_text(landing: Landing) -> str:
    """What a stop deferred at `landing` waits for, in the operator's words."""
    if not landing.waits_in and traps.AVAILABLE:
        return (
            f"its next line in {landing.anchor_name} (from CPython 3.13 a forced stop is raised"
            " at a line of the thread's own code)"
        )
    if not landing.waits_in:
        return f"it is back in {landing.anchor_name}"
    if landing.waits_in.endswith("__del__"):
        return f"it leaves {landing.waits_in} (Python swallows an exception raised there)"
    return (
        f"it leaves {landing.waits_in} (library code where the exception would leave a lock held)"
    )


def _over_locked(thread: threading.Thread, state: ThreadState, forced: ForceEpisode) -> bool:
    """End `forced` (holding state.lock) if the thread caught it, or left the
    code it was meant for before it could land. True if it is over."""
    if forced.state is ForceState.DELIVERED:
        if thread.is_alive() and caught(thread.ident or 0, (ThreadStopped,)):
            _end_locked(state, forced, "task_ended")
            return True
    elif forced.landing is not None and moved_on(forced.landing):
        _end_locked(state, forced, "moved_on")
        return True
    return False


def _end_locked(state: ThreadState, forced: ForceEpisode, how: str) -> None:
    traps.disarm(forced)
    forced.ended = how
    forced.landing = None
    forced.changed.set()
    if state.forced is forced:
        state.forget_stop_locked()


class _Lander:
    """Lands deferred forced stops once their threads are where they may land.

    One protected daemon thread (`threadctl-force`), running only while some
    stop waits. It tries each often while the thread moves (0.5 ms) and backs
    off to 50 ms while it stays put (blocked in a wait).

    A thread busy inside protected code (logging, a queue) is at a place the
    stop may land only now and then, and this thread sees it only when the
    GIL passes: every switch interval (5 ms by default) beside a busy thread.
    While such a thread is waited for, this holds the short switch interval
    (_switching: more hand-overs, more looks), for at most BUSY_BUDGET seconds
    per stop, and lets go as soon as no busy stop waits (also when this
    thread ends).
    """

    FAST = 0.0005
    SLOW = 0.05
    BUSY_BUDGET = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[ThreadState, tuple[threading.Thread, ForceEpisode]] = {}
        # where each thread was at the last try, and how many tries it stayed there
        self._position: dict[ThreadState, tuple[tuple[int, int] | None, int]] = {}
        self._wake = threading.Event()
        self._running = False

    def add(self, thread: threading.Thread, state: ThreadState, episode: ForceEpisode) -> None:
        with self._lock:
            self._waiting[state] = (thread, episode)
            self._wake.set()
            if self._running:
                return
            self._running = True
        lander = threading.Thread(target=self._run, name="threadctl-force", daemon=True)
        try:
            _os_names.start_own(lander)
        except RuntimeError:  # interpreter shutting down: the stop stays deferred
            with self._lock:
                self._running = False

    def _run(self) -> None:
        holding = False  # the short switch interval
        try:
            while True:
                with self._lock:
                    waiting = list(self._waiting.items())
                    if not waiting:
                        self._running = False
                        return
                    self._wake.clear()
                delay, busy = self.SLOW, False
                for state, (thread, episode) in waiting:
                    next_try = self._attempt(thread, state, episode)
                    if next_try is None:
                        with self._lock:
                            if self._waiting.get(state, (None, None))[1] is episode:
                                del self._waiting[state]
                                traps.disarm(episode)
                                self._position.pop(state, None)
                    else:
                        delay = min(delay, next_try)
                        started = episode.forced_at
                        busy |= next_try == self.FAST and time.time() - started < self.BUSY_BUDGET
                if busy != holding:
                    (short_interval.hold if busy else short_interval.release)()
                    holding = busy
                self._wake.wait(delay)
        finally:
            if holding:
                short_interval.release()

    def _attempt(
        self, thread: threading.Thread, state: ThreadState, episode: ForceEpisode
    ) -> float | None:
        """Try to land `episode`; the seconds until the next try, None if done."""
        with state.lock:
            landing = episode.landing
            if state.forced is not episode or landing is None:
                return None
            if not thread.is_alive():
                episode.landing = None
                return None
            if state.critical_marks:  # raised when the section ends (CriticalSection)
                episode.landing, episode.waits_in = None, _CRITICAL_SECTION
                return None
            now = position(landing)
            if now is None:
                _end_locked(state, episode, "moved_on")
                return None
            landed = _send(thread, episode, landing)
            if landed == CALLED_ON:
                episode.waits_in = (
                    f"it is back in {landing.anchor_name}, where it waited when the stop was"
                    " requested (it runs code called from there since: force it again to stop"
                    " that)"
                )
            elif landed != NOT_NOW:
                episode.landing = None
                if landed == SENT:
                    episode.waits_in = ""
                return None
        before, unchanged = self._position.get(state, (now, 0))
        unchanged = unchanged + 1 if now == before else 0
        self._position[state] = (now, unchanged)
        return min(self.SLOW, self.FAST * 2.0 ** (unchanged // 4))

    def forget_after_fork(self) -> None:
        """The forked child has no lander thread (and only one thread)."""
        self._lock = threading.Lock()
        self._waiting = {}
        self._position = {}
        self._wake = threading.Event()
        self._running = False


_lander = _Lander()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_lander.forget_after_fork)


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
                forced = state.forced
                if forced is not None and forced.state is ForceState.PENDING:
                    # Queued just before we entered and not raised yet: take it
                    # back, and raise it when the section ends instead.
                    _ClearAsyncExc(threading.get_ident(), None)
                    forced.state = ForceState.DEFERRED
                if forced is not None and forced.state is ForceState.DEFERRED:
                    forced.landing, forced.waits_in = None, _CRITICAL_SECTION
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
            forced = state.forced
            deferred = (
                forced is not None
                and forced.state is ForceState.DEFERRED
                and forced.waits_in == _CRITICAL_SECTION
            )
        if deferred:
            raise ForcedStop("forced stop (deferred until the critical section ended)")


def critical() -> CriticalSection:
    """`with threadctl.critical():` defers forced stops until the block ends."""
    return CriticalSection()


def prepare() -> None:
    """What must be in place before a stop exception is raised anywhere: the
    injector, the quiet excepthook, and stops leaving through Futures as
    TaskStopped."""
    _native.install_injector()
    install_quiet_excepthook()
    if "concurrent.futures" not in sys.modules:
        import concurrent.futures  # noqa: F401 - threadctl's own executor needs it anyway
    futures.patch((ThreadStopped,), TaskStopped, stop_left_thread)


def install_quiet_excepthook() -> None:
    """Let threads that die of a stop exception end without a traceback
    (an audit record instead; see _core.quiet)."""
    quiet.install((ThreadStopped,), _thread_ended)


def _thread_ended(args: threading.ExceptHookArgs) -> None:
    forced = args.exc_type is not None and issubclass(args.exc_type, ForcedStop)
    _audit.thread_ended(args.thread, forced=forced)
    _history.thread_died(args.thread, args.exc_value)
