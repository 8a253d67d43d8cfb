"""Stop every thread of the process gracefully: the one-thread machinery
(flag, hooks, grace, force, critical sections, audit) for all threads at once.

The answer to "Ctrl-C does not stop my threaded program": request a
cooperative stop of every thread that may be stopped, wait up to a grace
period for all of them together, then, only if asked, force those still
alive, and report per thread what happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from threadctl import _audit, _control, _history
from threadctl._core.procfs import is_alive
from threadctl._hooks import run_stop_hooks
from threadctl._outcome import StopOutcome
from threadctl._registry import ForceEpisode, ThreadState, registry
from threadctl._snapshot import NO_FRAMES, ThreadSnapshot, describe, live_threads
from threadctl._stacks import judge_threads
from threadctl.errors import ProtectedThread


@dataclass(frozen=True)
class ThreadReport:
    """What a stop_all did to one thread: outcome EXITED (during the grace if
    not `forced`), STILL_RUNNING, or if forced and not exited a FORCE_* state,
    TASK_ENDED or MOVED_ON."""

    thread: ThreadSnapshot
    outcome: StopOutcome
    forced: bool


@dataclass(frozen=True)
class StopAllResult:
    threads: list[ThreadReport]
    waited_seconds: float

    @property
    def all_exited(self) -> bool:
        return all(report.outcome is StopOutcome.EXITED for report in self.threads)


def stop_all(
    *,
    grace: float = 5.0,
    force: bool = False,
    wait: float = 1.0,
    reason: str = "",
    include_main_thread: bool = False,
    include_calling_thread: bool = False,
    caller: str = "in-process",
    abandoned: Callable[[], bool] = lambda: False,
    escalate: threading.Event | None = None,
) -> StopAllResult:
    """threadctl.stop_all() (_api, which documents the arguments it shares),
    as the servicer, the signal handlers and one-shot jobs call it.

    Args:
        caller: who asks, for the audit record.
        abandoned: polled during waits; True ends them early.
        escalate: when set during the grace period, force at once (the second
            Ctrl-C).

    Returns:
        A report per thread acted on.
    """
    _control.validate(reason, wait, grace, force=True)
    started = time.monotonic()
    me = threading.current_thread()
    targets = [
        thread
        for thread in live_threads().values()
        if not registry.state_of(thread).protected
        and (include_main_thread or thread is not threading.main_thread())
        and (include_calling_thread or thread is not me)
    ]
    states = {thread: registry.state_of(thread) for thread in targets}
    entries = [
        _history.thread_stop(
            thread, state.identity, action="stop_all", forced=force, caller=caller, reason=reason
        )
        for thread, state in states.items()
    ]
    for state in states.values():
        registry.request_stop(state, reason)
        run_stop_hooks(state)
    _wait_all(
        [t for t in targets if t is not me], started + grace, lambda: abandoned() or _set(escalate)
    )
    forced: dict[threading.Thread, ForceEpisode] = {}
    if force or _set(escalate):
        for thread in targets:
            if (
                thread is not me
                and is_alive(thread)
                and not isinstance(thread, threading._DummyThread)
            ):
                try:
                    episode, _gone = _control.force_now(thread, states[thread], reason)
                except ProtectedThread:
                    # Only protected code runs in it at this instant (threading's
                    # own exit path, say): reported as it is, never a failed call.
                    continue
                if episode is not None:
                    forced[thread] = episode
        deadline = time.monotonic() + wait
        for thread, episode in forced.items():
            remaining = max(0.0, deadline - time.monotonic())
            _control.wait_for_exit(thread, remaining, abandoned, episode)
    reports = _reports(targets, states, forced)
    result = StopAllResult(reports, time.monotonic() - started)
    for entry, report in zip(entries, reports, strict=True):
        _audit.stop_all_thread(caller=caller, report=report, reason=reason)
        _history.answered(entry, report.outcome.value, forced=report.forced)
    _audit.stop_all_done(caller=caller, result=result, reason=reason, force=force)
    return result


def _reports(
    targets: list[threading.Thread],
    states: dict[threading.Thread, ThreadState],
    forced: dict[threading.Thread, ForceEpisode],
) -> list[ThreadReport]:
    """One report per thread; the frames of those still alive are judged
    once for all of them (a capture per thread made the report quadratic)."""
    alive = {thread for thread in targets if is_alive(thread)}  # a set: looked up per thread
    judged = judge_threads([t.ident for t in alive if t.ident])
    reports = []
    for thread in targets:
        state, episode = states[thread], forced.get(thread)
        if thread not in alive:
            reports.append(
                ThreadReport(_gone(thread, state), StopOutcome.EXITED, episode is not None)
            )
            continue
        record = describe(thread, judged.get(thread.ident or 0, NO_FRAMES), None, alive=True)
        if episode is not None and episode.ended:
            outcome = _control.ENDED_OUTCOME[episode.ended]
        else:
            outcome = _control.FORCE_OUTCOME.get(record.force, StopOutcome.STILL_RUNNING)
        reports.append(ThreadReport(record, outcome, episode is not None))
    return reports


def _gone(thread: threading.Thread, state: ThreadState) -> ThreadSnapshot:
    forced = state.forced
    return ThreadSnapshot(
        ident=thread.ident or 0,
        native_id=thread.native_id or 0,
        identity=state.identity,
        name=thread.name,
        daemon=thread.daemon,
        cooperative=state.cooperative,
        stop_requested=True,
        stop_reason=state.stop_reason,
        stop_requested_at=state.stop_requested_at,
        force=state.force,
        forced_at=0.0 if forced is None else forced.forced_at,
        force_delivered_at=0.0 if forced is None else forced.delivered_at,
    )


def _wait_all(
    threads: list[threading.Thread], deadline: float, give_up: Callable[[], bool]
) -> None:
    """Wait until every thread exited, the deadline passed, or give_up()."""
    for thread in threads:
        while is_alive(thread) and not give_up():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            _control.join_briefly(thread, remaining)


def _set(event: threading.Event | None) -> bool:
    return event is not None and event.is_set()
