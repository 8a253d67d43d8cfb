"""Stopping many threads at once, measured in the host where it happens.

threadctl.stop_all() of N cooperating threads, blocked in stop-aware waits
(half in threadctl.sleep, half in threadctl.wait on an Event of their own),
from the call until it returns, which it does once all have exited; beside
the bare floor of waking as many plain threads: set N Events that N threads
wait on, then join them all. Both start timing only once every thread is
blocked in its wait, and the two alternate round by round.

Beside it, stop_all() of threads that ignore the stop flag (blocked in a
plain Event.wait that only the host sets afterwards), at several sizes in
turn: the whole cost of a stop_all that must report threads still running,
to see that it grows linearly with their number.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import threadctl
from threadctl import StopOutcome

BLOCKED_DEADLINE = 60.0  # starting 1,000 threads on a loaded 2-core machine
GRACE = 10.0
# No grace for the threads that ignore the flag: waiting would only add the
# same constant at every size and hide how the work itself grows.
DEAF_GRACE = 0.0
_CONDITION_WAIT = threading.Condition.wait.__code__
_cooperating: list[threading.Thread] = []  # the last start_cooperating() batch


def all_blocked(threads: list[threading.Thread]) -> None:
    """Return once every thread's innermost frame is Condition.wait.

    Every wait here (Event.wait, threadctl.sleep, threadctl.wait) ends in
    Condition.wait, and a thread inside it is either blocked or about to
    release the lock that a wake-up needs. One sys._current_frames() per
    poll: cheap for 1,000 threads, unlike a stack capture per thread.
    """
    idents = [thread.ident for thread in threads]
    deadline = time.monotonic() + BLOCKED_DEADLINE
    while True:
        frames = sys._current_frames()
        waiting = sum(
            ident in frames and frames[ident].f_code is _CONDITION_WAIT for ident in idents
        )
        if waiting == len(idents):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {waiting} of {len(idents)} threads blocked in a wait")
        time.sleep(0.001)


def _start(targets: list[Callable[[], object]], name: str) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=target, name=f"{name}-{i}", daemon=True)
        for i, target in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    all_blocked(threads)
    return threads


def bare_wake(count: int) -> float:
    """Seconds from setting `count` Events to all `count` plain waiters joined."""
    events = [threading.Event() for _ in range(count)]
    threads = _start([lambda e=event: e.wait(60) for event in events], "plain")
    t0 = time.perf_counter()
    for event in events:
        event.set()
    for thread in threads:
        thread.join()
    return time.perf_counter() - t0


def _sleeper() -> None:
    while not threadctl.sleep(60):
        pass


def _waiter() -> None:
    event = threading.Event()  # its own, as each bare waiter has
    while not threadctl.stop_requested():
        threadctl.wait(event, 60)


def start_cooperating(count: int) -> int:
    """`count` threads blocked in threadctl.sleep / threadctl.wait until stopped."""
    _cooperating[:] = _start([_sleeper, _waiter] * (count // 2) + [_sleeper] * (count % 2), "coop")
    return len(_cooperating)


def cooperating_alive() -> int:
    return sum(thread.is_alive() for thread in _cooperating)


def stop_all_once(count: int) -> float:
    """Seconds threadctl.stop_all() takes to stop `count` cooperating threads.

    The host must run no other thread that stop_all would stop (its main
    thread calls this; a control server's threads are protected).
    """
    start_cooperating(count)
    t0 = time.perf_counter()
    result = threadctl.stop_all(grace=GRACE)
    elapsed = time.perf_counter() - t0
    if len(result.threads) != count or not result.all_exited or cooperating_alive():
        raise RuntimeError(
            f"stop_all acted on {len(result.threads)} threads (not {count}),"
            f" all exited: {result.all_exited}, still alive: {cooperating_alive()}"
        )
    return elapsed


def stop_all_rounds(count: int, rounds: int) -> dict[str, list[float]]:
    """Alternating stop_all() and the bare wake, after one discarded round of each."""
    measured: dict[str, list[float]] = {"threadctl": [], "bare": []}
    probes = (("threadctl", stop_all_once), ("bare", bare_wake))
    for r in range(1 + rounds):
        for name, probe in probes[r % 2 :] + probes[: r % 2]:
            elapsed = probe(count)
            if r:
                measured[name].append(elapsed)
    return measured


def stop_deaf_once(count: int) -> float:
    """Seconds stop_all() takes over `count` threads that ignore the flag,
    checking it reported every one still running; they are released afterwards."""
    release = threading.Event()
    threads = _start([release.wait] * count, "deaf")
    try:
        t0 = time.perf_counter()
        result = threadctl.stop_all(grace=DEAF_GRACE)
        elapsed = time.perf_counter() - t0
    finally:
        release.set()
        for thread in threads:
            thread.join()
    running = sum(report.outcome is StopOutcome.STILL_RUNNING for report in result.threads)
    if len(result.threads) != count or running != count:
        raise RuntimeError(
            f"stop_all acted on {len(result.threads)} threads (not {count}),"
            f" {running} reported still running"
        )
    return elapsed


def stop_deaf_rounds(sizes: list[int], rounds: int) -> dict[str, list[float]]:
    """stop_all() of deaf threads at each size in turn (order rotated each
    round), after one discarded round."""
    measured: dict[str, list[float]] = {str(size): [] for size in sizes}
    for r in range(1 + rounds):
        shift = r % len(sizes)
        for size in sizes[shift:] + sizes[:shift]:
            elapsed = stop_deaf_once(size)
            if r:
                measured[str(size)].append(elapsed)
    return measured
