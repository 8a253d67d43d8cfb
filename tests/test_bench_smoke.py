"""`make bench` still runs: the benchmark at tiny sizes prints its table and
writes every figure to JSON. No timing is asserted; that is the full run's job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent
# Every row the full benchmark reports, by id (the smoke run shrinks sizes,
# not the set of figures).
FIGURES = {
    "echo",
    *(f"list_{n}_{kind}" for n in (10, 100, 1000, 10_000) for kind in ("nostacks", "stacks")),
    "server_list_10000",
    "watch_10000",
    "list_tasks_1000",
    "echo_idle",
    *(f"{call}_busy_{n}" for call in ("echo", "list") for n in (1, 4)),
    "get_10000",
    "stop_10000",
    "echo_10000",
    "wake_10000",
    "stop_all_ignoring_1000",
    "stop_all_ignoring_3000",
    "coop_stop",
    "event_wake",
    "force_local",
    "force_grpc_raised",
    "force_grpc_exited",
    "echo_busy",
    "work_no_server",
    "work_idle",
    "work_10hz",
    "work_100hz",
    "loop_no_server",
    "loop_idle",
    "loop_10hz",
    "work_busy_no_server",
    "work_busy_10hz",
    "cpu_none",
    "cpu_idle",
    "cpu_10hz",
    "cpu_100hz",
    "cli_vs_grpc_rpc",
    "cli_vs_import_grpc",
    "cli_vs_pyspy",
    "stop_all",
    "stop_all_event_wakes",
    "stop_all_cli",
    "attach_oneshot_list",
    "attach_first",
    "attach_detach",
    "attach_cold_install",
    "attach_pyspy",
    "rss_install",
    "rss_per_thread",
}


def test_smoke_run_prints_the_table_and_writes_every_figure(
    tmp_path: Path, env: dict[str, str]
) -> None:
    results = tmp_path / "bench.json"
    env = {**env, "PYTHONPATH": os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])}

    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(results)],
        env=env,
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    header = run.stdout.splitlines()[0].split()
    assert header == ["figure", "median", "p99", "baseline", "ratio", "target", "met?"]
    document = json.loads(results.read_text())
    assert document["smoke"] is True
    figures = {figure["id"]: figure for figure in document["figures"]}
    assert set(figures) == FIGURES
    for figure in figures.values():
        assert figure["label"] in run.stdout
        if figure["skipped"]:
            assert figure["median"] is None
        else:
            assert isinstance(figure["median"], float), figure
            assert figure["n"] >= 1, figure
        if figure["target"]:
            assert figure["met"] in (True, False) or figure["skipped"], figure
