"""The package as it is published: the sdist carries the generated stubs,
the build backend and the license, and installing from it needs no
grpcio-tools (an exact pin, with no wheel for CPythons newer than it); one
py3-none manylinux wheel serves every CPython; a build without a C compiler
fails loudly unless asked not to."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from support import DEADLINE, HOSTS, Host, host_env, readme_blocks

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
        "server/_core/native/thread_frame.c",
        "client/attach/_agent/agent.c",
    } <= names
    assert "grpcio-tools" not in _build_requires(source)
    (source / "proto/threadctl/v1/threadctl_pb2.py").unlink()  # as in a git checkout
    assert "grpcio-tools==" in _build_requires(source)


def _clean_copy(tmp_path: Path) -> Path:
    """The source tree without what builds leave in it (a build/ directory
    would let setuptools skip compiling) and without the environments."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "node_modules", "build", "dist", "wheelhouse", "*.so", "__pycache__"
    ))  # fmt: skip
    return source


def _pip_wheel(source: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(source)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_without_a_compiler_the_build_fails_loudly_unless_asked_not_to(tmp_path: Path) -> None:
    source = _clean_copy(tmp_path)
    no_compiler = {**os.environ, "CC": str(tmp_path / "no-such-cc")}
    failed = _pip_wheel(source, tmp_path / "failed", no_compiler)
    assert failed.returncode != 0
    assert "threadctl: its native library could not be built" in failed.stdout + failed.stderr
    assert "THREADCTL_WITHOUT_NATIVE=1" in failed.stdout + failed.stderr

    on_purpose = {**no_compiler, "THREADCTL_WITHOUT_NATIVE": "1"}
    reduced = _pip_wheel(source, tmp_path / "reduced", on_purpose)
    assert reduced.returncode == 0, reduced.stderr[-2000:]
    (wheel,) = (tmp_path / "reduced").glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")  # pure: nothing native inside
    with zipfile.ZipFile(wheel) as archive:
        assert not [name for name in archive.namelist() if name.endswith(".so")]


def _python(minor: str) -> Path | None:
    """The newest pyenv CPython `minor` (as .ci/run picks them), if installed."""
    root = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
    found = sorted(root.glob(f"{minor}.*"), key=lambda p: [int(n) for n in p.name.split(".")])
    return found[-1] / "bin" / "python" if found else None


def test_one_manylinux_wheel_serves_every_cpython(tmp_path: Path) -> None:
    """The release recipe (README, "Releasing"), run as written: one py3-none
    wheel, repaired by auditwheel, installed on 3.10 and on 3.13; in each, the native library
    loads (forced stops' landing check) and attaches to a process of that
    CPython which never imported threadctl."""
    pythons = {minor: _python(minor) for minor in ("3.10", "3.13")}
    missing = [minor for minor, python in pythons.items() if python is None]
    if missing:
        pytest.skip(f"CPython {', '.join(missing)} not installed under pyenv")
    source = _clean_copy(tmp_path)  # the README's commands write dist/ and wheelhouse/
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    (recipe,) = readme_blocks("auditwheel repair")
    for command in filter(None, (line.split("#", 1)[0].strip() for line in recipe.splitlines())):
        done = subprocess.run(
            ["bash", "-c", command], cwd=source, env=env,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
    (wheel,) = (source / "dist").glob("*.whl")
    assert wheel.name.endswith("-py3-none-linux_x86_64.whl")
    (manylinux,) = (source / "wheelhouse").glob("*.whl")
    assert re.search(r"-py3-none-manylinux_2_\d+_x86_64\.whl$", manylinux.name), manylinux.name

    for minor, python in pythons.items():
        assert python is not None
        venv = tmp_path / f"venv-{minor}"
        loads = "from threadctl import _native; assert _native._load()"
        for command in (
            [str(python), "-m", "venv", str(venv)],
            [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", str(manylinux)],
            [str(venv / "bin/python"), "-c", loads],
        ):
            done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, f"{minor}: {command}: {done.stderr[-2000:]}"
        host = Host([str(python), str(HOSTS / "bare_target.py")], host_env(tmp_path))
        try:
            listed = subprocess.run(
                [str(venv / "bin/threadctl"), "list", "--attach", "--pid", str(host.pid), "--json"],
                env=host_env(tmp_path), capture_output=True, text=True, timeout=DEADLINE * 3,
                check=False,
            )  # fmt: skip
            assert listed.returncode == 0, f"{minor}: {listed.stderr}"
            listing = json.loads(listed.stdout)
            assert listing["process"]["python_version"].startswith(minor)
            assert {"spinner", "sleeper"} <= {t["name"] for t in listing["threads"]}
        finally:
            host.stop()


def test_the_cibuildwheel_recipe_builds_one_wheel() -> None:
    """cibuildwheel (pyproject.toml, [tool.cibuildwheel]) builds the wheel in a
    manylinux image, once: a py3-none wheel serves every CPython. Docker
    images cannot be pulled here, so this checks what it would build."""
    done = subprocess.run(
        [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", "linux",
         str(ROOT)],
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cp312-manylinux_x86_64"]
