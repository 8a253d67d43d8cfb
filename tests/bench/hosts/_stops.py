"""Stop probes of the benchmark host: what a stop costs, measured where it happens.

Floors beside threadctl's own numbers: a bare threading.Event wake (for the
cooperative stop) and a bare PyThreadState_SetAsyncExc (for the forced one),
each on the same kind of thread as threadctl's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import threadctl


def wait_blocked(thread: threading.Thread) -> None:
    """Return once `thread` is blocked in a wait (its innermost frame is a `wait`).

    Polled with a deadline; read through threadctl's own safe stack capture.
    """
    deadline = time.monotonic() + 10
    while True:
        frames = threadctl.get_thread(thread.ident).stack
        if frames and frames[-1].function.endswith("wait"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"thread {thread.name} never blocked in a wait")
        time.sleep(0.0005)


def wake_samples(count: int) -> list[float]:
    """Event.set() in this thread -> the waiter running again, as a bare floor."""
    samples = []
    for _ in range(count):
        event = threading.Event()
        woke: list[float] = []
        thread = threading.Thread(target=_wake_and_record, args=(event, woke))
        thread.start()
        wait_blocked(thread)
        t0 = time.perf_counter()
        event.set()
        thread.join()
        samples.append(woke[0] - t0)
    return samples


def _wake_and_record(event: threading.Event, woke: list[float]) -> None:
    event.wait(60)
    woke.append(time.perf_counter())


def start_cooperative() -> threading.Thread:
    """A thread blocked in threadctl.sleep() until it is stopped."""

    def cooperative() -> None:
        while not threadctl.sleep(60):
            pass

    thread = threading.Thread(target=cooperative, name="coop", daemon=True)
    thread.start()
    wait_blocked(thread)
    return thread


class BareStop(BaseException):
    """What the bare baseline injects: no threadctl code runs on delivery."""


def spinner(catch: type[BaseException], started: threading.Event, raised: list[float]) -> None:
    """A busy pure-Python loop with a real body; records when the stop is raised."""
    n = 0
    started.set()
    try:
        while True:
            n = (n * 7 + 3) % 1_000_003
    except catch:
        raised.append(time.perf_counter())


def force_delivery(send: Callable[[threading.Thread], object], catch: type[BaseException]) -> float:
    """Seconds from calling `send` on a busy thread to the exception raised in it."""
    started, raised = threading.Event(), []
    thread = threading.Thread(target=spinner, args=(catch, started, raised), daemon=True)
    thread.start()
    started.wait()
    t0 = time.perf_counter()
    send(thread)
    thread.join()
    return raised[0] - t0


def bare_send(thread: threading.Thread) -> None:
    import ctypes  # not before: the RSS row counts what install() loads

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident or 0), ctypes.py_object(BareStop)
    )


def force_local(count: int) -> dict[str, list[float]]:
    """Interleaved: threadctl.stop(force=True) and a bare SetAsyncExc, same spinner."""
    ours, bare = [], []
    for _ in range(count):
        ours.append(
            force_delivery(lambda t: threadctl.stop(t.ident, force=True), threadctl.ForcedStop)
        )
        bare.append(force_delivery(bare_send, BareStop))
    return {"threadctl": ours, "bare": bare}


def start_spinner(report: Callable[[int], None]) -> threading.Thread:
    """A busy thread that reports when a forced stop reached it, in CLOCK_MONOTONIC ns.

    CLOCK_MONOTONIC is one clock for the whole machine, so the bench can
    subtract its own send time (taken in another process) from this.
    """
    started = threading.Event()

    def spin() -> None:
        n = 0
        started.set()
        try:
            while True:
                n = (n * 7 + 3) % 1_000_003
        except threadctl.ForcedStop:
            report(time.clock_gettime_ns(time.CLOCK_MONOTONIC))

    thread = threading.Thread(target=spin, name="spinner", daemon=True)
    thread.start()
    started.wait()
    return thread
