"""`threadctl list` from a cold start, beside what any Python gRPC tool pays.

Each run is a new process, as an operator's is. Baselines: `import grpc`
alone, `import grpc` plus one echo round trip (the floor for a Python gRPC
CLI), and `py-spy dump` of the same host (the tool people use instead).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench._report import Figure, timing
from bench._stats import median
from support import THREADCTL

ECHO_ONCE = (
    "import sys, grpc; "
    "grpc.insecure_channel(sys.argv[1]).unary_unary(sys.argv[2])(b'x', timeout=10)"
)
RUN_DEADLINE = 60.0


def _pyspy(pid: int, env: dict[str, str]) -> tuple[list[str] | None, str]:
    """The py-spy command for `pid`, or None and why it cannot be used."""
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        return None, "py-spy is not installed (make bench installs it from PyPI)"
    command = [found, "dump", "--pid", str(pid)]
    probe = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE, check=False
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no message"])[-1]
        return None, f"py-spy cannot attach here: {reason}"
    return command, ""


def _wall_times(
    commands: dict[str, list[str]], env: dict[str, str], runs: int
) -> dict[str, list[float]]:
    """Wall seconds per command; one discarded warm-up round, order rotated each round."""
    names = list(commands)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs + 1):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            result = subprocess.run(
                commands[name], env=env, capture_output=True, text=True, timeout=RUN_DEADLINE
            )
            elapsed = time.perf_counter() - t0
            if result.returncode != 0:
                raise RuntimeError(f"{commands[name]} exited {result.returncode}: {result.stderr}")
            if r:
                samples[name].append(elapsed)
    return samples


def cli_cold(
    pid: int, threads: int, env: dict[str, str], echo_address: str, echo_method: str, runs: int
) -> list[Figure]:
    pyspy, skipped = _pyspy(pid, env)
    commands = {
        "threadctl": [THREADCTL, "list", "--pid", str(pid)],
        "import_grpc": [sys.executable, "-c", "import grpc"],
        "grpc_rpc": [sys.executable, "-c", ECHO_ONCE, echo_address, echo_method],
    }
    if pyspy:
        commands["pyspy"] = pyspy
    samples = _wall_times(commands, env, runs)
    label = f"threadctl list --pid, cold, {threads} threads"
    figures = [
        timing(
            "cli_vs_grpc_rpc",
            label,
            samples["threadctl"],
            baseline=median(samples["grpc_rpc"]),
            baseline_label="import grpc+1 RPC",
            target_ratio=1.15,
        ),
        timing(
            "cli_vs_import_grpc",
            label,
            samples["threadctl"],
            baseline=median(samples["import_grpc"]),
            baseline_label="python -c 'import grpc'",
        ),
    ]
    if pyspy:
        figures.append(
            timing(
                "cli_vs_pyspy",
                label,
                samples["threadctl"],
                baseline=median(samples["pyspy"]),
                baseline_label="py-spy dump",
            )
        )
    else:
        figures.append(Figure("cli_vs_pyspy", f"{label} vs py-spy dump", "ms", skipped=skipped))
    return figures
