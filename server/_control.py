"""Finding a thread and stopping it: the operations behind the RPCs.

The servicer calls exactly these, and `threadctl.stop()` (_api) exposes them
in-process, so the same checks guard both paths: the id must name a live
thread, the identity precondition must hold, and protected threads are
refused before anything is changed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from threadctl import _audit, _force, _history, _switching
from threadctl._core.procfs import is_alive
from threadctl._force import settle
from threadctl._hooks import run_stop_hooks
from threadctl._outcome import StopOutcome
from threadctl._registry import ForceEpisode, ForceState, ThreadState, registry
from threadctl._selector import Selector, find_thread
from threadctl._snapshot import ThreadSnapshot, snapshot, snapshot_with_stack
from threadctl.errors import IdentityMismatch, InvalidArgument, ProtectedThread, ThreadNotFound

MAX_REASON_LENGTH = 1024
MAX_WAIT_SECONDS = 3600.0
# How often a wait re-checks whether its caller went away; the thread's exit
# itself wakes the wait at once.
_ABANDON_CHECK_INTERVAL = 0.05
# How long a forced stop without --wait waits for the exception to be raised.
_DELIVERY_WINDOW = 0.1
# How often a wait re-checks whether a delivered forced stop was caught.
_EPISODE_CHECK_INTERVAL = 0.01


FORCE_OUTCOME = {
    ForceState.PENDING: StopOutcome.FORCE_PENDING,
    ForceState.DEFERRED: StopOutcome.FORCE_DEFERRED,
    ForceState.DELIVERED: StopOutcome.FORCE_DELIVERED,
}
ENDED_OUTCOME = {"task_ended": StopOutcome.TASK_ENDED, "moved_on": StopOutcome.MOVED_ON}


@dataclass(frozen=True)
class StopResult:
    """The answer to a stop: outcome, the thread as it was at the end, details."""

    outcome: StopOutcome
    thread: ThreadSnapshot
    already_requested: bool
    waited_seconds: float
    forced: bool = False


def get_thread_by(selector: Selector) -> ThreadSnapshot:
    return snapshot_with_stack(find_thread(selector))


def stop_thread(
    selector: Selector,
    *,
    expected_identity: str = "",
    reason: str = "",
    wait: float = 0.0,
    force: bool = False,
    grace: float = 0.0,
    allow_main_thread: bool = False,
    caller: str = "in-process",
    abandoned: Callable[[], bool] = lambda: False,
) -> StopResult:
    """threadctl.stop() (_api), for a thread named by `selector`, as the RPC
    and one-shot jobs call it: `caller` names who asks in the audit record, `abandoned` is
    polled during waits (True ends them early: the caller went away or the
    server is closing; the stop itself still stands)."""
    validate(reason, wait, grace, force)
    mode = "force" if force else "cooperative"
    try:
        thread = find_thread(selector)
        state = registry.state_of(thread)
        if expected_identity and expected_identity != state.identity:
            raise IdentityMismatch(
                f"thread {thread.ident} is now {state.identity!r}, not {expected_identity!r}:"
                " the id was reused by another thread; nothing was stopped"
            )
        if state.protected:
            raise ProtectedThread(f"thread {thread.name!r} belongs to the control server")
        if thread is threading.main_thread() and not allow_main_thread:
            raise ProtectedThread(
                "the main thread is protected; set allow_main_thread to stop it (CLI: --allow-main)"
            )
        entry = _history.thread_stop(
            thread, state.identity, action="stop", forced=force, caller=caller, reason=reason
        )
        started = time.monotonic()
        already = state.stop_is_requested
        episode: ForceEpisode | None = None
        exited = False
        if force and grace == 0:
            # The exception first (it also sets the flag): it lands where the
            # thread is now, instead of letting it run on to a stop check.
            episode, exited = force_now(thread, state, reason)
        else:
            registry.request_stop(state, reason)
        run_stop_hooks(state)  # wakes stop-aware waits, so a queued exception is raised
        if force and grace > 0:
            exited = wait_for_exit(thread, grace, abandoned)
            if not exited and not abandoned():
                episode, exited = force_now(thread, state, reason)
        forced = episode is not None
        if not exited:
            # Without --wait, give a busy thread a moment to take the exception,
            # so the answer can tell "delivered" or "task ended" from "pending".
            window = wait if wait > 0 else (_DELIVERY_WINDOW if forced else 0.0)
            exited = wait_for_exit(thread, window, abandoned, episode or state.forced)
    except (ThreadNotFound, IdentityMismatch, ProtectedThread) as refusal:
        _audit.stop_refused(
            caller=caller,
            ident=selector.ident,
            native_id=selector.native_id or selector.tid_or_ident,
            mode=mode,
            reason=reason,
            error=refusal,
        )
        raise
    waited = time.monotonic() - started
    outcome = _outcome(exited, episode or settle(thread, state), force, wait)
    result = StopResult(outcome, snapshot(thread), already, waited, forced)
    _audit.stop_done(caller=caller, mode=mode, result=result, reason=reason)
    _history.answered(entry, outcome.value, forced=forced)
    return result


def force_now(
    thread: threading.Thread, state: ThreadState, reason: str
) -> tuple[ForceEpisode | None, bool]:
    """Force a stop; returns (the episode this call started, thread already gone)."""
    try:
        return _force.force(thread, state, reason), False
    except ThreadNotFound:
        return None, True  # it ended (cooperatively) just before


def _outcome(exited: bool, episode: ForceEpisode | None, force: bool, wait: float) -> StopOutcome:
    if exited:
        return StopOutcome.EXITED
    if episode is not None:
        if episode.ended:
            return ENDED_OUTCOME[episode.ended]
        return FORCE_OUTCOME[episode.state]
    if force:
        return StopOutcome.STILL_RUNNING
    return StopOutcome.STILL_RUNNING if wait > 0 else StopOutcome.REQUESTED


def validate(reason: str, wait: float, grace: float, force: bool) -> None:
    """Check the common arguments of a stop (InvalidArgument if malformed)."""
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidArgument(f"reason is {len(reason)} characters; at most {MAX_REASON_LENGTH}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in reason):
        raise InvalidArgument("reason must not contain control characters")
    for name, seconds in (("wait", wait), ("grace", grace)):
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_WAIT_SECONDS:
            raise InvalidArgument(
                f"{name} must be between 0 and {MAX_WAIT_SECONDS:g} seconds, not {seconds}"
            )
    if grace > 0 and not force:
        raise InvalidArgument("a grace period only applies to a forced stop")


def wait_for_exit(
    thread: threading.Thread,
    timeout: float,
    abandoned: Callable[[], bool],
    episode: ForceEpisode | None = None,
) -> bool:
    """Wait until `thread` has exited (True), or, with a forced stop's
    `episode`, until that is over (the thread caught it: a pool worker goes
    on), or `timeout` passed or `abandoned()` (False)."""
    deadline = time.monotonic() + timeout
    while is_alive(thread):
        if episode is not None and _over(thread, episode):
            return not is_alive(thread)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or abandoned():
            return False
        join_briefly(thread, remaining, _EPISODE_CHECK_INTERVAL if episode else None)
    return True


def _over(thread: threading.Thread, episode: ForceEpisode) -> bool:
    if episode.ended:
        return True
    if episode.state is ForceState.DELIVERED:
        settle(thread, registry.state_of(thread))
    return bool(episode.ended)


def join_briefly(thread: threading.Thread, remaining: float, interval: float | None = None) -> None:
    """Wait for `thread` to exit, at most `remaining` seconds and at most one
    check interval (so the caller can re-check whether to go on)."""
    timeout = min(remaining, interval or _ABANDON_CHECK_INTERVAL)
    with _switching.waiting():
        if isinstance(thread, threading._DummyThread) or thread is threading.current_thread():
            time.sleep(timeout)  # cannot be joined: started outside `threading`, or ourselves
        else:
            thread.join(timeout)
