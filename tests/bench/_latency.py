"""Round trips: listing, cooperative stop and forced stop, each beside its floor.

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
                target_ratio=1.5 if (nominal, stacks) == (100, False) else None,
            )
        )
    return figures


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def server_side(host: BenchHost, nominal: int, threads: int, count: int) -> list[Figure]:
    """In-host listing time at one size, and the /proc reads it contains, alone."""
    measured = host.ask(f"listtime {count} 0", "LISTTIME")
    return [
        timing(
            f"server_list_{nominal}",
            f"server-side snapshot, {threads} threads",
            measured["snapshot"],
            target_max=50.0 if nominal == 10_000 else None,
        ),
        timing(
            f"server_proc_reads_{nominal}",
            "  /proc/self/task/*/stat reads alone",
            measured["proc_reads"],
        ),
    ]


def cooperative_stop(host: BenchHost, conn: Connection, count: int) -> list[Figure]:
    """Stop with wait of a thread blocked in threadctl.sleep(), until it has exited.

    Baseline: an echo round trip plus a bare Event wake measured in the host.
    """
    wakes = host.ask(f"wake {count}", "WAKE")["samples"]
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
