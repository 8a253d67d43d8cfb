"""`make demo` keeps working: the demo script runs end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end(env: dict[str, str]) -> None:
    demo = Path(__file__).parent / "demo.py"

    result = subprocess.run(
        [sys.executable, str(demo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "(indexer) exited after" in result.stdout
    assert "(legacy-watchdog) is still running" in result.stdout
    assert result.stdout.rstrip().endswith("demo: OK")
