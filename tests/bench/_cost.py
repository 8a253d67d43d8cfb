"""Cost to the host: a fixed CPU-bound workload timed under each server condition.

Measured inside one process, alternating: install, time the workload with the
server idle and polled at 10 Hz and 100 Hz (in rotating order), close, time it
with no server; repeat. Comparing two processes does not work: an allocating
workload in two fresh processes of the same program differed by up to 12%
here (memory layout), ten times the 1% being judged; so the workload
allocates nothing, and every comparison is within one process. Ratios are medians of
per-round ratios. Beside it, the CPU the host process burns while it is
otherwise idle, which no layout effect can fake.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from bench._hostctl import BenchHost, Connection
from bench._report import Figure, timing
from bench._stats import median

SERVED = (("idle", 0), ("10hz", 10), ("100hz", 100))
TARGETS = {"idle": 1.01, "10hz": 1.03, "100hz": None}
RATES = {"10hz": "10 Hz", "100hz": "100 Hz"}


class Poller:
    """Calls `call` (ListThreads by default) `rate` times a second on its own
    thread while open (0: never)."""

    def __init__(self, conn: Connection, rate: float, call: str = "list_threads") -> None:
        self._call = getattr(conn, call)
        self._rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)
        self._polls = 0
        self._opened = self._closed = 0.0

    def _run(self) -> None:
        interval = 1.0 / self._rate
        due = time.monotonic()
        while not self._stop.wait(max(due - time.monotonic(), 0.0)):
            self._call()
            self._polls += 1
            due += interval

    @property
    def achieved(self) -> float:
        """Calls per second actually made: fewer than asked when each call
        waits for a busy host's GIL."""
        return self._polls / (self._closed - self._opened)

    def __enter__(self) -> Poller:
        self._opened = time.monotonic()
        if self._rate:
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._rate:
            self._thread.join()
        self._closed = time.monotonic()


Samples = dict[str, list[float]]


def _rounds(
    host: BenchHost,
    rounds: int,
    command: str,
    answer: str,
    call: str = "list_threads",
    served: tuple[tuple[str, int], ...] = SERVED,
) -> tuple[Samples, Samples]:
    """Answers to `command` per condition, `rounds` times (the `served` ones,
    then closed), and the polling rates (of `call`) achieved meanwhile."""
    results: Samples = {"none": [], **{name: [] for name, _ in served}}
    rates: Samples = {name: [] for name, _ in served}
    host.ask(command, answer)  # warm-up
    for r in range(rounds):
        address = host.ask("install", "INSTALLED")["address"]
        with Connection(address) as conn:
            conn.list_threads()
            shift = r % len(served)
            for name, rate in served[shift:] + served[:shift]:
                with Poller(conn, rate, call) as poller:
                    results[name].append(_value(host.ask(command, answer)))
                rates[name].append(poller.achieved)
        host.ask("close", "CLOSED")
        results["none"].append(_value(host.ask(command, answer)))
    return results, rates


def _label(name: str, rates: Samples, polled: str = "ListThreads") -> str:
    if name == "idle":
        return "idle server"
    return f"{polled} at {RATES[name]} ({median(rates[name]):.0f}/s done)"


def _served_figures(
    key: str, label: str, seconds: Samples, rates: Samples, polled: str
) -> list[Figure]:
    """The closed condition's figure, then each served one's with its ratio
    to it (the median of per-round ratios)."""
    floor = median(seconds["none"])
    figures = [timing(f"{key}_no_server", f"{label}, no server (closed)", seconds["none"])]
    for name in rates:
        ratios = [s / n for s, n in zip(seconds[name], seconds["none"], strict=True)]
        figures.append(
            timing(
                f"{key}_{name}",
                f"{label}, {_label(name, rates, polled)}",
                seconds[name],
                baseline=floor,
                baseline_label="no server",
                target_ratio=TARGETS[name],
                paired_ratio=median(ratios),
            )
        )
    return figures


def _value(answer: dict[str, float]) -> float:
    """Workload seconds, or the share of one core the process used."""
    return answer["seconds"] if "seconds" in answer else answer["cpu"] / answer["wall"]


def host_cost(host: BenchHost, rounds: int, iterations: int) -> list[Figure]:
    """Workload wall time per condition; ratios are medians of per-round ratios."""
    seconds, rates = _rounds(host, rounds, f"work {iterations}", "WORK")
    return _served_figures("work", "host workload", seconds, rates, "ListThreads")


def loop_cost(host: BenchHost, rounds: int, turns: int, tasks: int) -> list[Figure]:
    """An asyncio loop's turns (`turns` of `await asyncio.sleep(0)`, in a
    loop with `tasks` pending tasks), idle and with ListTasks at 10 Hz: what
    a listing's probe and its walk of the tasks cost the loop, and that an
    idle server costs it nothing."""
    host.ask(f"tasks {tasks}", "TASKS")
    seconds, rates = _rounds(
        host, rounds, f"loopwork {turns}", "LOOPWORK", call="list_tasks", served=SERVED[:2]
    )
    label = f"asyncio loop, {turns} turns beside {tasks} tasks"
    return _served_figures("loop", label, seconds, rates, "ListTasks")


def host_cost_beside_busy(
    host: BenchHost, rounds: int, iterations: int, spinners: int
) -> list[Figure]:
    """The workload beside `spinners` busy threads, with the server polled at
    10 Hz and closed in turn (order alternated): what the short switch
    interval while a request is worked on (threadctl._switching) costs a
    host whose own threads contend for the GIL."""
    served: list[float] = []
    closed: list[float] = []
    rates: list[float] = []
    work = f"work {iterations}"
    host.ask(f"busy {spinners}", "BUSY")
    try:
        for r in range(rounds):
            for serving in (True, False) if r % 2 else (False, True):
                if not serving:
                    closed.append(_value(host.ask(work, "WORK")))
                    continue
                address = host.ask("install", "INSTALLED")["address"]
                with Connection(address) as conn:
                    conn.list_threads()
                    with Poller(conn, 10) as poller:
                        served.append(_value(host.ask(work, "WORK")))
                    rates.append(poller.achieved)
                host.ask("close", "CLOSED")
    finally:
        host.ask("unbusy", "UNBUSY")
    ratios = [s / n for s, n in zip(served, closed, strict=True)]
    beside = f"beside {spinners} busy threads"
    return [
        timing("work_busy_no_server", f"host workload {beside}, no server (closed)", closed),
        timing(
            "work_busy_10hz",
            f"host workload {beside}, ListThreads at 10 Hz ({median(rates):.0f}/s done)",
            served,
            baseline=median(closed),
            baseline_label="no server",
            target_ratio=TARGETS["10hz"],
            paired_ratio=median(ratios),
        ),
    ]


def host_cpu(host: BenchHost, rounds: int, window: float) -> list[Figure]:
    """Share of one core the otherwise idle host uses per condition."""
    shares, rates = _rounds(host, rounds, f"cpu {window}", "CPU")
    return [
        Figure(
            id=f"cpu_{name}",
            label="host CPU use, "
            + ("no server (closed)" if name == "none" else _label(name, rates)),
            unit="% core",
            median=median(values) * 100,
            p99=max(values) * 100,
            n=len(values),
        )
        for name, values in shares.items()
    ]
