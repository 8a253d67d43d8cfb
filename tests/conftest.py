from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import HOSTS, Host, host_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    return host_env(runtime)


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG_RUNTIME_DIR for installs inside the test process."""
    base = tmp_path / "xdg"
    base.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    return base


@pytest.fixture
def start_host(env: dict[str, str]) -> Iterator[Callable[..., Host]]:
    """Start real host programs from tests/hosts; all are ended after the test."""
    started: list[Host] = []

    def start(script: str, *args: str, launcher: list[str] | None = None) -> Host:
        host = Host([sys.executable, *(launcher or []), str(HOSTS / script), *args], env)
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture
def workers(start_host: Callable[..., Host]) -> Host:
    return start_host("workers.py")
