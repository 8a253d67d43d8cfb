"""Run the benchmark: `PYTHONPATH=tests python -m bench [--smoke] [--json PATH]`.

Four host processes of tests/bench/hosts/bench_host.py:
1. cost: RSS of install(), then workload rounds with threadctl installed and
   closed in turn; beside it a fresh host for a bare gRPC server's RSS;
2. latency (one host with threadctl and a bare echo server, grown from 10 to
   10,000 threads): stops, GetThread, a busy host and the CLI while it is
   small, listings at each size, then at 10,000 GetThread, StopThread and
   WatchThreads again and RSS per thread;
3. stop_all (a host of its own): 1,000 cooperating threads stopped at once,
   in the host and by `threadctl stop --all`, and stop_all() of 1,000 and
   3,000 threads that ignore the flag (bench/_stop_all.py).
Then attach: plain processes that never imported threadctl, reached by
`threadctl attach` and one-shot `--attach`, beside py-spy (bench/_attach.py).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import importlib.util
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import google.protobuf
import grpc

import threadctl
from bench import _attach, _cli, _cost, _latency, _memory, _stop_all
from bench._hostctl import BenchHost, Connection, connect
from bench._report import Figure, render_table, timing, write_json
from support import host_env

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sizes:
    """How much to measure. Thread counts map the nominal size (which names the
    figure) to the total thread count in the host; a smoke run shrinks them."""

    threads: dict[int, int] = field(
        default_factory=lambda: {10: 10, 100: 100, 1000: 1000, 10_000: 10_000}
    )
    list_runs: dict[int, int] = field(
        default_factory=lambda: {10: 300, 100: 300, 1000: 60, 10_000: 12}
    )
    stack_runs: dict[int, int] = field(
        default_factory=lambda: {10: 200, 100: 100, 1000: 20, 10_000: 5}
    )
    server_runs: int = 10
    stops: int = 50
    busy_rounds: int = 4
    busy_calls: int = 15
    cost_rounds: int = 10
    work_iterations: int = 16_000_000
    busy_work_iterations: int = 4_000_000  # beside 3 spinners: about 4x as long
    loop_turns: int = 400_000  # about 0.8 s: several polls per window
    cpu_rounds: int = 3
    cpu_window: float = 1.0
    cli_runs: int = 10
    stop_all_threads: int = 1000
    stop_all_runs: int = 5
    stop_all_cli_runs: int = 5
    # Nominal size (names the figure) -> threads that ignore the stop flag.
    stop_deaf_threads: dict[int, int] = field(default_factory=lambda: {1000: 1000, 3000: 3000})
    stop_deaf_runs: int = 5
    attach_runs: int = 5
    tasks: int = 1000
    task_list_runs: int = 60


FULL = Sizes()
SMOKE = Sizes(
    threads={10: 10, 100: 12, 1000: 16, 10_000: 24},
    list_runs=dict.fromkeys((10, 100, 1000, 10_000), 3),
    stack_runs=dict.fromkeys((10, 100, 1000, 10_000), 2),
    server_runs=2,
    stops=3,
    busy_rounds=1,
    busy_calls=3,
    cost_rounds=1,
    work_iterations=100_000,
    busy_work_iterations=100_000,
    loop_turns=200,
    cpu_rounds=1,
    cpu_window=0.05,
    cli_runs=1,
    stop_all_threads=20,
    stop_all_runs=1,
    stop_all_cli_runs=1,
    stop_deaf_threads={1000: 10, 3000: 30},
    stop_deaf_runs=1,
    attach_runs=1,
    tasks=20,
    task_list_runs=3,
)


@contextlib.contextmanager
def hosts(env: dict[str, str], count: int) -> Iterator[list[BenchHost]]:
    """Start `count` bench hosts; end them all, also on failure."""
    started: list[BenchHost] = []
    try:
        for _ in range(count):
            started.append(BenchHost(env))
        yield started
    finally:
        for host in started:
            host.stop()


SECTIONS = ("listing", "stops", "cost", "cli", "attach", "memory")
Sections = dict[str, list[Figure]]


def cost_and_install(env: dict[str, str], sizes: Sizes) -> Sections:
    """Host slowdown and CPU use, and the RSS install() adds beside a bare gRPC server's."""
    with hosts(env, 2) as (first, fresh):
        before = first.ask("rss", "RSS")["bytes"]
        address = first.ask("install", "INSTALLED")["address"]
        with Connection(address) as conn:
            conn.list_threads()
        after = first.ask("rss", "RSS")["bytes"]
        first.ask("close", "CLOSED")
        cost = _cost.host_cost(first, sizes.cost_rounds, sizes.work_iterations)
        cost += _cost.loop_cost(first, sizes.cost_rounds, sizes.loop_turns, tasks=100)
        cost += _cost.host_cost_beside_busy(
            first, sizes.cost_rounds, sizes.busy_work_iterations, spinners=3
        )
        cost += _cost.host_cpu(first, sizes.cpu_rounds, sizes.cpu_window)
        bare_before = fresh.ask("rss", "RSS")["bytes"]
        echo = fresh.ask("echo", "ECHO")
        with grpc.insecure_channel(echo["address"]) as channel:
            channel.unary_unary(echo["method"])(b"x", timeout=30)
        bare_after = fresh.ask("rss", "RSS")["bytes"]
    return {"cost": cost, "memory": [_memory.install_rss(before, after, bare_before, bare_after)]}


def latency(env: dict[str, str], sizes: Sizes) -> Sections:
    """One host grown from ~10 to ~10,000 threads; stops, a busy host and the CLI
    at the small end, the same calls again at the large end."""
    found: Sections = {name: [] for name in SECTIONS}
    smallest, largest = min(sizes.threads), max(sizes.threads)
    with hosts(env, 1) as (host,):
        conn = connect(host)
        try:
            threads = few = 0
            small: _latency.Samples = {}
            busy: list[Figure] = []
            for nominal, total in sizes.threads.items():
                if nominal == largest:
                    weighed, threads, ident = grow_and_weigh(host, conn, total, threads)
                    found["memory"].append(weighed)
                else:
                    parked = host.ask(f"park {total}", "PARKED")
                    threads, ident = parked["threads"], parked["ident"]
                if nominal == smallest:
                    few = threads
                    echo = _latency.round_robin({"echo": conn.echo}, sizes.list_runs[nominal])
                    found["listing"].append(
                        timing("echo", "bare echo RPC (transport floor)", echo["echo"])
                    )
                    small = _latency.one_thread_calls(host, conn, ident, sizes.stops)
                    found["stops"] += _latency.cooperative_stop(small)
                    found["stops"] += _latency.forced_stop(
                        host, conn, sizes.stops, max(sizes.stops // 2, 3)
                    )
                    found["cli"] += _cli.cli_cold(
                        host.pid, threads, env, conn.echo_address, conn.echo_method, sizes.cli_runs
                    )
                found["listing"] += _latency.listing(
                    conn, nominal, threads, sizes.list_runs[nominal], sizes.stack_runs[nominal]
                )
                if nominal == smallest:
                    busy = _latency.busy_host(
                        host, conn, threads, sizes.busy_rounds, sizes.busy_calls
                    )
                    found["listing"].append(
                        _latency.task_listing(host, conn, sizes.tasks, sizes.task_list_runs)
                    )
                if nominal == largest:
                    found["listing"] += _latency.server_side(
                        host, nominal, threads, sizes.server_runs
                    )
                    found["listing"].append(
                        _latency.watch(conn, nominal, threads, sizes.list_runs[nominal])
                    )
                    large = _latency.one_thread_calls(host, conn, ident, sizes.stops)
                    found["stops"] += _latency.at_scale(small, large, (few, threads), nominal)
            found["listing"] += busy
        finally:
            conn.close()
    return found


def grow_and_weigh(
    host: BenchHost, conn: Connection, total: int, before: int
) -> tuple[Figure, int, int]:
    """Park threads up to `total`, then list them once: RSS per bare and per
    tracked thread; and the thread count and a parked thread's ident."""
    rss_before = host.ask("rss", "RSS")["bytes"]
    parked = host.ask(f"park {total}", "PARKED")
    threads = parked["threads"]
    rss_parked = host.ask("rss", "RSS")["bytes"]
    conn.list_threads()
    rss_listed = host.ask("rss", "RSS")["bytes"]
    weighed = _memory.per_thread_rss(rss_before, rss_parked, rss_listed, threads - before)
    return weighed, threads, parked["ident"]


def compile_sources() -> None:
    """Byte-compile threadctl's own modules, as pip does when it installs a
    package: an editable install runs them from source, and where
    PYTHONDONTWRITEBYTECODE is set (as on this project's machines) every cold
    start would compile them again (about 50 ms of `threadctl list`), a cost
    the baselines' grpc and protobuf, compiled by pip, never pay."""
    for package in ("threadctl", "threadctl.client", "threadctl.v1"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin is not None:
            compileall.compile_dir(Path(spec.origin).parent, quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs")
    parser.add_argument(
        "--json",
        type=Path,
        help="where to write the results (default: bench-results.json at the repository"
        " root; a smoke run writes none unless given)",
    )
    args = parser.parse_args(argv)
    if args.json is None and not args.smoke:
        args.json = REPO / "bench-results.json"
    sizes = SMOKE if args.smoke else FULL
    compile_sources()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="threadctl-bench-") as scratch:
        runtime = Path(scratch) / "run"
        runtime.mkdir(mode=0o700)
        env = host_env(runtime)
        parts = [
            cost_and_install(env, sizes),
            latency(env, sizes),
            {
                "stops": _stop_all.stop_all(
                    env,
                    sizes.stop_all_threads,
                    sizes.stop_all_runs,
                    sizes.stop_all_cli_runs,
                    sizes.stop_deaf_threads,
                    sizes.stop_deaf_runs,
                )
            },
            {"attach": _attach.attach(env, sizes.attach_runs)},
        ]
    figures = [f for name in SECTIONS for part in parts for f in part.get(name, [])]
    meta = {
        "smoke": args.smoke,
        "seconds": round(time.monotonic() - started, 1),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "threadctl": threadctl.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        # Other work on the machine skews everything; say how busy it was
        # (afterwards the figure counts the bench's own 10,000 threads).
        "load_average_1min_before": round(load_before, 2),
    }
    print(render_table(figures))
    written = "not written" if args.json is None else f"wrote {args.json}"
    print(
        f"\n{meta['seconds']} s; Python {meta['python']}, grpcio {meta['grpcio']},"
        f" protobuf {meta['protobuf']}, {meta['cpus']} CPUs,"
        f" load average {load_before:.1f} before the run; {written}"
    )
    if args.json is not None:
        write_json(args.json, figures, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
