"""The package as it is published: the sdist carries the generated stubs,
the build backend and the license, and installing from it needs no
grpcio-tools (an exact pin, with no wheel for CPythons newer than it)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from support import DEADLINE

ROOT = Path(__file__).resolve().parent.parent


def _build_requires(source: Path) -> str:
    """What the build backend adds to setuptools' needs to build `source`."""
    code = "import threadctl_stubs; print(threadctl_stubs.generator_requires())"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=source, env={"PYTHONPATH": str(source / "_build")},
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_sdist_ships_stubs_and_builds_without_the_generator(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (sdist,) = tmp_path.glob("threadctl-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        archive.extractall(tmp_path / "unpacked", filter="data")
    source = next((tmp_path / "unpacked").iterdir())

    assert {
        "LICENSE",
        "_build/threadctl_build.py",
        "_build/threadctl_stubs.py",
        "proto/threadctl/v1/threadctl_pb2.py",
        "proto/threadctl/v1/threadctl_pb2_grpc.py",
        "server/_core/native/landing.c",
        "client/attach/_agent/agent.c",
    } <= names
    assert "grpcio-tools" not in _build_requires(source)
    (source / "proto/threadctl/v1/threadctl_pb2.py").unlink()  # as in a git checkout
    assert "grpcio-tools==" in _build_requires(source)
