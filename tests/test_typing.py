"""Type checking: the public API type-checks in a user's program, and the
package itself passes `mypy --strict` (pyproject's [tool.mypy]) on the
CPython running the tests, so every CI stage checks its version's branches."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import threadctl

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).parent / "typing" / "user_script.py"
INSTALLED = "site-packages" in threadctl.__file__


def mypy(cache: Path, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", str(cache),
         "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}", *arguments],
        capture_output=True, text=True, timeout=600, check=False, cwd=cwd,
    )  # fmt: skip


def test_a_user_script_passes_mypy_strict(tmp_path: Path) -> None:
    if not INSTALLED:
        # mypy cannot follow setuptools' editable finder; CI installs a build.
        pytest.skip("threadctl is installed editable here; mypy needs a built install")

    done = mypy(tmp_path / "cache", "--strict", str(SCRIPT), cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_passes_mypy_strict(tmp_path: Path) -> None:
    where = tmp_path / "package"  # mypy run in site-packages would check its neighbours
    if INSTALLED:
        shutil.copytree(Path(threadctl.__file__).parent, where / "threadctl")
    else:  # editable: the source tree maps onto the package only when built
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
             str(where), str(ROOT)],
            capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip

    done = mypy(
        tmp_path / "cache", "--config-file", str(ROOT / "pyproject.toml"), "-p", "threadctl",
        cwd=where,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
