"""Stopping every thread at once: stop_all() of many cooperating threads.

In a host of its own (stop_all stops every thread it may, so no other bench
thread may live there), with threadctl installed:
1. in the host, threadctl.stop_all() of N threads blocked in threadctl.sleep /
   threadctl.wait, until it returns (once all have exited), alternating with
   the bare floor: set N Events that N plain threads wait on, join them all
   (tests/bench/hosts/_stop_many.py);
2. from outside, `threadctl stop --all --grace 10 --pid PID` of as many
   threads, the CLI's wall time from a cold start, beside the in-host figure;
3. in the host, stop_all() with no grace of 1,000 and of 3,000 threads that
   ignore the flag (blocked in a plain Event.wait), sizes alternating round by
   round: the call must report every one still running, and should cost no
   more than linearly more at three times the threads.
"""

from __future__ import annotations

import subprocess
import time

from bench._hostctl import BenchHost
from bench._report import Figure, timing
from bench._stats import median
from support import THREADCTL

CLI_DEADLINE = 60.0
# 3,000 threads ignoring the flag against 1,000: linear, with some slack.
DEAF_TARGET = 3.5


def _cli_rounds(host: BenchHost, env: dict[str, str], threads: int, runs: int) -> list[float]:
    """Wall seconds of `threadctl stop --all`, each on a fresh batch; one discarded warm-up."""
    command = [THREADCTL, "stop", "--all", "--grace", "10", "--pid", str(host.pid)]
    samples = []
    for r in range(1 + runs):
        started = host.ask(f"coopmany {threads}", "COOPMANY")["threads"]
        t0 = time.perf_counter()
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=CLI_DEADLINE
        )
        elapsed = time.perf_counter() - t0
        alive = host.ask("coopalive", "COOPALIVE")["alive"]
        if result.returncode != 0 or alive or started != threads:
            raise RuntimeError(
                f"{command} exited {result.returncode} with {alive} of {started} threads"
                f" alive: {result.stderr}"
            )
        if r:
            samples.append(elapsed)
    return samples


def stop_all(
    env: dict[str, str],
    threads: int,
    runs: int,
    cli_runs: int,
    deaf: dict[int, int],
    deaf_runs: int,
) -> list[Figure]:
    host = BenchHost(env)
    try:
        host.ask("install", "INSTALLED")
        local = host.ask(f"stopall {threads} {runs}", "STOPALL")
        cli = _cli_rounds(host, env, threads, cli_runs)
        sizes = ",".join(str(count) for count in deaf.values())
        ignored = host.ask(f"stopdeaf {sizes} {deaf_runs}", "STOPDEAF")
    finally:
        host.stop()
    return _cooperating(threads, local, cli) + _ignoring(deaf, ignored)


def _ignoring(deaf: dict[int, int], samples: dict[str, list[float]]) -> list[Figure]:
    """A row per size; each larger one against the smallest, with ratios of
    the rounds' pairs (the sizes alternate) and a linear target."""
    (small, few), *larger = deaf.items()
    label = "stop_all(), grace 0, {} threads ignoring the flag -> all still running"
    figures = [timing(f"stop_all_ignoring_{small}", label.format(few), samples[str(few)])]
    for nominal, many in larger:
        pairs = zip(samples[str(many)], samples[str(few)], strict=True)
        figures.append(
            timing(
                f"stop_all_ignoring_{nominal}",
                label.format(many),
                samples[str(many)],
                baseline=median(samples[str(few)]),
                baseline_label=f"same, {few} threads",
                target_ratio=DEAF_TARGET,
                paired_ratio=median([m / f for m, f in pairs]),
            )
        )
    return figures


def _cooperating(threads: int, local: dict[str, list[float]], cli: list[float]) -> list[Figure]:
    ratios = [t / b for t, b in zip(local["threadctl"], local["bare"], strict=True)]
    return [
        timing(
            "stop_all",
            f"stop_all(), {threads} threads in threadctl.sleep/wait -> all exited",
            local["threadctl"],
            baseline=median(local["bare"]),
            baseline_label=f"{threads} Event wakes",
            paired_ratio=median(ratios),
        ),
        timing(
            "stop_all_event_wakes",
            f"  bare: set {threads} Events, join {threads} threads (in host)",
            local["bare"],
        ),
        timing(
            "stop_all_cli",
            f"threadctl stop --all --grace 10, {threads} threads, cold",
            cli,
            baseline=median(local["threadctl"]),
            baseline_label="in-host stop_all()",
        ),
    ]
