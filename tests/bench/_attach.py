"""Reaching a process that never imported threadctl, beside py-spy.

Targets are tests/hosts/plain_target.py (a busy spinner, a sleeper, a main
thread blocked on a lock), run by this CPython's base interpreter, outside
the bench's environment, where there is one. Each command is a new process
timed by wall clock, as an operator runs it:
- `threadctl attach PID` on a fresh target (a first attach: the process
  loads threadctl, grpcio and protobuf), then `threadctl detach PID`;
- the one-shot `threadctl list --pid PID --attach` and `py-spy dump --pid
  PID`, taking turns on another fresh target (a one-shot leaves nothing
  running, so repeating it on one process is what an operator sees; only a
  full attach changes the process for good);
- beside the first attach, a cold `python -c "import threadctl;
  threadctl.install()"`: what loading and starting threadctl costs a process
  that does it itself, the floor for an attach (the bench's interpreter, as
  the base one has no threadctl or grpcio to import).
One target at a time: each has a spinner that keeps a core busy. The first
round is a discarded warm-up when there are several; if threadctl cannot
attach in it, the threadctl rows say why they were skipped.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench._cli import _pyspy
from bench._report import Figure, timing
from bench._stats import median
from support import HOSTS, THREADCTL, Host

RUN_DEADLINE = 60.0
ROWS = {
    "oneshot": ("attach_oneshot_list", "threadctl list --pid PID --attach (one-shot)"),
    "attach": ("attach_first", "threadctl attach PID, first attach"),
    "detach": ("attach_detach", "  threadctl detach PID, after it"),
}
COLD_INSTALL = [sys.executable, "-c", "import threadctl; threadctl.install()"]


class CommandFailed(Exception):
    pass


def _python() -> str:
    """This CPython without the bench's packages (a venv's base), else this one."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    base = Path(sys.base_prefix) / "bin" / f"python{version}"
    return str(base) if base.exists() else sys.executable


@contextlib.contextmanager
def _plain_target(env: dict[str, str]) -> Iterator[Host]:
    """A running plain_target.py (stdin kept open, as it needs); ended afterwards."""
    target = Host([_python(), str(HOSTS / "plain_target.py")], env)
    try:
        yield target
    finally:
        target.stop()


def _timed(command: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE)
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        shown = " ".join([Path(command[0]).name, *command[1:]])
        raise CommandFailed(f"`{shown}` exited {result.returncode}: {last}")
    return elapsed


def _side_by_side(
    commands: dict[str, list[str]], env: dict[str, str], shift: int
) -> dict[str, float]:
    names = list(commands)
    shift %= max(len(names), 1)
    return {name: _timed(commands[name], env) for name in names[shift:] + names[:shift]}


def attach(env: dict[str, str], runs: int) -> list[Figure]:
    warmup = 1 if runs > 1 else 0
    samples: dict[str, list[float]] = {name: [] for name in (*ROWS, "pyspy", "install")}
    pyspy: list[str] | None = None
    pyspy_skipped = threadctl_skipped = ""
    for r in range(warmup + runs):
        took: dict[str, float] = {}
        with _plain_target(env) as target:
            pid = str(target.pid)
            if r == 0:
                pyspy, pyspy_skipped = _pyspy(target.pid, env)
            commands: dict[str, list[str]] = {}
            if not threadctl_skipped:
                commands["oneshot"] = [THREADCTL, "list", "--pid", pid, "--attach"]
            if pyspy:
                commands["pyspy"] = [*pyspy[:-1], pid]
            try:
                took.update(_side_by_side(commands, env, r))
            except CommandFailed as failed:
                if r or "oneshot" not in commands:
                    raise
                threadctl_skipped = f"threadctl cannot attach here: {failed}"
                if pyspy:
                    took.update(_side_by_side({"pyspy": commands["pyspy"]}, env, 0))
        if not threadctl_skipped:
            with _plain_target(env) as target:
                try:
                    took["attach"] = _timed([THREADCTL, "attach", str(target.pid)], env)
                except CommandFailed as failed:
                    if r:
                        raise
                    threadctl_skipped = f"threadctl cannot attach here: {failed}"
                else:
                    took["detach"] = _timed([THREADCTL, "detach", str(target.pid)], env)
            took["install"] = _timed(COLD_INSTALL, env)
        if r >= warmup:
            for name, elapsed in took.items():
                samples[name].append(elapsed)
    return _figures(samples, threadctl_skipped, pyspy_skipped)


def _figures(
    samples: dict[str, list[float]], threadctl_skipped: str, pyspy_skipped: str
) -> list[Figure]:
    pyspy_label = "  py-spy dump --pid PID, plain process"
    pyspy = median(samples["pyspy"]) if samples["pyspy"] else None
    install_label = "  python -c 'import threadctl; threadctl.install()', cold"
    baselines = {
        "oneshot": (pyspy, "py-spy dump", 5.0),
        "attach": (median(samples["install"]), "cold install()", 3.0),
        "detach": (None, "", None),
    }
    figures = []
    for name, (id, label) in ROWS.items():
        baseline, baseline_label, target = baselines[name]
        if threadctl_skipped:
            figures.append(Figure(id, label, "ms", skipped=threadctl_skipped, target_ratio=target))
        else:
            figures.append(
                timing(
                    id,
                    label,
                    samples[name],
                    baseline=baseline,
                    baseline_label=baseline_label if baseline is not None else "",
                    target_ratio=target if baseline is not None else None,
                )
            )
    figures.append(timing("attach_cold_install", install_label, samples["install"]))
    if pyspy_skipped:
        figures.append(Figure("attach_pyspy", pyspy_label, "ms", skipped=pyspy_skipped))
    else:
        figures.append(timing("attach_pyspy", pyspy_label, samples["pyspy"]))
    return figures
