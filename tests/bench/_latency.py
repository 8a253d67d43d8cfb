"""Round trips: listing, watching, getting one thread, cooperative and forced
stop, each beside its floor; and how they grow from ~10 to ~10,000 threads and
slow when the host's own threads keep the GIL busy.

Every threadctl call is timed interleaved with its baseline (call, baseline,
call, baseline, ...), so drift on a noisy machine hits both alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench._hostctl import BenchHost, Connection
from bench._report import Figure, timing
from bench._stats import median
from threadctl.v1 import threadctl_pb2 as pb

Samples = dict[str, list[float]]


# ListThreads without stacks, as a multiple of the echo round trip.
LIST_TARGETS = {100: 1.5, 1000: 4.0}
# Seconds between WatchThreads messages asked for (the smallest it allows).
WATCH_INTERVAL = 0.1
# Host with N pure-Python spinners: echo and ListThreads as a multiple of idle echo.
BUSY_TARGETS = {1: 3.0, 4: 10.0}


def round_robin(calls: dict[str, Callable[[], object]], count: int) -> dict[str, list[float]]:
    """Seconds per call of each callable, alternating, after a warm-up of a tenth."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    warmup = max(2, count // 10)
    for i in range(warmup + count):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            elapsed = time.perf_counter() - t0
            if i >= warmup:
                samples[name].append(elapsed)
    return samples


def listing(
    conn: Connection, nominal: int, threads: int, count: int, stack_count: int
) -> list[Figure]:
    """ListThreads without and with stacks against the echo round trip."""
    figures = []
    for stacks, n in ((False, count), (True, stack_count)):
        samples = round_robin({"echo": conn.echo, "list": lambda s=stacks: conn.list_threads(s)}, n)
        kind = "stacks" if stacks else "nostacks"
        size = conn.list_threads(stacks).ByteSize()
        figures.append(
            timing(
                f"list_{nominal}_{kind}",
                f"ListThreads, {threads} threads, {'with' if stacks else 'no'} stacks"
                f" ({_size(size)})",
                samples["list"],
                baseline=median(samples["echo"]),
                baseline_label="echo",
                target_ratio=LIST_TARGETS.get(nominal) if not stacks else None,
            )
        )
    return figures


def task_listing(host: BenchHost, conn: Connection, tasks: int, count: int) -> Figure:
    """ListTasks of a loop with `tasks` pending tasks against the echo round
    trip (no target set yet: issue 17 asks for the row). Its probe of the
    loop waits for the loop's next turn, which an idle loop takes at once."""
    started = host.ask(f"tasks {tasks}", "TASKS")["tasks"]
    samples = round_robin({"echo": conn.echo, "tasks": conn.list_tasks}, count)
    return timing(
        "list_tasks_1000",
        f"ListTasks, {started} asyncio tasks ({_size(conn.list_tasks().ByteSize())})",
        samples["tasks"],
        baseline=median(samples["echo"]),
        baseline_label="echo",
    )


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def server_side(host: BenchHost, nominal: int, threads: int, count: int) -> list[Figure]:
    """In-host listing time at one size."""
    measured = host.ask(f"listtime {count} 0", "LISTTIME")
    return [
        timing(
            f"server_list_{nominal}",
            f"server-side snapshot, {threads} threads",
            measured["snapshot"],
            target_max=40.0 if nominal == 10_000 else None,
        )
    ]


def watch(conn: Connection, nominal: int, threads: int, count: int) -> Figure:
    """WatchThreads from request to its first message, alternating with
    ListThreads at the same size: what serving one message costs."""
    samples = round_robin(
        {"list": conn.list_threads, "watch": lambda: conn.first_watch_message(WATCH_INTERVAL)},
        count,
    )
    return timing(
        f"watch_{nominal}",
        f"WatchThreads, request -> first message, {threads} threads",
        samples["watch"],
        baseline=median(samples["list"]),
        baseline_label=f"ListThreads({threads})",
        target_ratio=2.0,
    )


def one_thread_calls(host: BenchHost, conn: Connection, ident: int, count: int) -> Samples:
    """GetThread of the parked thread `ident`, cooperative stops with wait
    (with an echo after each), `count` of each after a warm-up, and as many
    bare Event wakes in the host."""
    gets = round_robin({"get": lambda: conn.get_thread(ident)}, count)["get"]
    wakes = host.ask(f"wake {count}", "WAKE")["samples"]
    return {"get": gets, "wake": wakes, **_cooperative_stops(host, conn, count)}


def at_scale(
    small: Samples, large: Samples, threads: tuple[int, int], nominal: int
) -> list[Figure]:
    """GetThread and StopThread with ~10,000 threads, each against itself
    with ~10; and the bare echo and Event wake likewise, which tell how
    much of that growth the process pays without threadctl (every hand-over
    between threads costs more beside 10,000 of them)."""
    few, many = threads
    return [
        timing(
            f"{name}_{nominal}",
            f"{label}, {many} threads",
            large[name],
            baseline=median(small[name]),
            baseline_label=f"same at {few} threads",
            target_ratio=target,
        )
        for name, label, target in (
            ("get", "GetThread by ident", 1.2),
            ("stop", "cooperative StopThread --wait", 1.2),
            ("echo", "  bare echo RPC (after each stop)", None),
            ("wake", "  bare Event wake (in host)", None),
        )
    ]


def busy_host(
    host: BenchHost, conn: Connection, threads: int, rounds: int, count: int
) -> list[Figure]:
    """Echo and ListThreads with 1 and with 4 spinners in the host, beside idle echo.

    The conditions take turns (order rotated each round), `count` calls of
    each per turn: a spinner holds the GIL whenever it can, so every
    hand-over to the server's threads waits on it.
    """
    conditions = (0, *BUSY_TARGETS)
    echoes: dict[int, list[float]] = {busy: [] for busy in conditions}
    lists: dict[int, list[float]] = {busy: [] for busy in BUSY_TARGETS}
    for r in range(rounds):
        shift = r % len(conditions)
        for busy in conditions[shift:] + conditions[:shift]:
            if not busy:
                echoes[0] += round_robin({"echo": conn.echo}, count)["echo"]
                continue
            host.ask(f"busy {busy}", "BUSY")
            try:
                samples = round_robin({"echo": conn.echo, "list": conn.list_threads}, count)
            finally:
                host.ask("unbusy", "UNBUSY")
            echoes[busy] += samples["echo"]
            lists[busy] += samples["list"]
    idle = median(echoes[0])
    figures = [timing("echo_idle", f"  echo, {threads} threads, none busy", echoes[0])]
    for busy, target in BUSY_TARGETS.items():
        for name, samples in (("echo", echoes[busy]), ("list", lists[busy])):
            call = "echo" if name == "echo" else f"ListThreads({threads})"
            figures.append(
                timing(
                    f"{name}_busy_{busy}",
                    f"{call}, {threads} threads + {busy} busy",
                    samples,
                    baseline=idle,
                    baseline_label="idle echo",
                    target_ratio=target,
                )
            )
    return figures


def _cooperative_stops(host: BenchHost, conn: Connection, count: int) -> Samples:
    """Seconds per cooperative StopThread --wait of a fresh thread in
    threadctl.sleep(), and per echo right after each; 3 warm-ups discarded."""
    stops: list[float] = []
    echoes: list[float] = []
    for i in range(count + 3):
        ident = host.ask("coop", "COOP")["ident"]
        request = pb.StopThreadRequest(
            thread=pb.ThreadSelector(ident=ident),
            mode=pb.STOP_MODE_COOPERATIVE,
            wait_seconds=5,
        )
        t0 = time.perf_counter()
        response = conn.stop_thread(request)
        t1 = time.perf_counter()
        conn.echo()
        t2 = time.perf_counter()
        if response.outcome != pb.STOP_OUTCOME_EXITED:
            raise RuntimeError(f"cooperative stop answered {response.outcome}, not EXITED")
        if i >= 3:
            stops.append(t1 - t0)
            echoes.append(t2 - t1)
    return {"stop": stops, "echo": echoes}


def cooperative_stop(calls: Samples) -> list[Figure]:
    """Stop with wait of a thread blocked in threadctl.sleep(), until it has exited
    (`calls` from one_thread_calls).

    Baseline: an echo round trip plus a bare Event wake measured in the host.
    """
    stops, echoes, wakes = calls["stop"], calls["echo"], calls["wake"]
    return [
        timing(
            "coop_stop",
            "cooperative stop --wait, thread in threadctl.sleep",
            stops,
            baseline=median(echoes) + median(wakes),
            baseline_label="echo+wake",
            target_ratio=1.5,
        ),
        timing("event_wake", "  bare Event wake (in host)", wakes),
    ]


def forced_stop(host: BenchHost, conn: Connection, local_count: int, count: int) -> list[Figure]:
    """Forced stop of a busy pure-Python thread, in-process and over gRPC.

    The host thread stamps CLOCK_MONOTONIC (one clock for the whole machine)
    in its except handler, so request -> raised is measured across processes.
    """
    local = host.ask(f"forcelocal {local_count}", "FORCELOCAL")
    bare = median(local["bare"])
    answered: list[float] = []
    raised: list[float] = []
    echoes: list[float] = []
    for i in range(count + 2):
        ident = host.ask("spin", "SPIN")["ident"]
        t0 = time.perf_counter()
        conn.echo()
        t1 = time.perf_counter()
        request = pb.StopThreadRequest(
            thread=pb.ThreadSelector(ident=ident), mode=pb.STOP_MODE_FORCE, wait_seconds=5
        )
        sent_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        t2 = time.perf_counter()
        response = conn.stop_thread(request)
        t3 = time.perf_counter()
        raised_ns = host.expect("RAISED")["t_ns"]
        if response.outcome != pb.STOP_OUTCOME_EXITED:
            raise RuntimeError(f"forced stop answered {response.outcome}, not EXITED")
        if i >= 2:
            echoes.append(t1 - t0)
            answered.append(t3 - t2)
            raised.append((raised_ns - sent_ns) / 1e9)
    return [
        timing(
            "force_local",
            "forced stop in-process: stop(force) -> raised",
            local["threadctl"],
            baseline=bare,
            baseline_label="bare SetAsyncExc",
        ),
        timing("force_grpc_raised", "forced stop over gRPC: sent -> raised", raised),
        timing(
            "force_grpc_exited",
            "forced stop --wait over gRPC -> exited",
            answered,
            baseline=median(echoes) + bare,
            baseline_label="echo(busy)+bare",
        ),
        timing("echo_busy", "  echo, host with one busy thread", echoes),
    ]
