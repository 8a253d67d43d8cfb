"""A process as it runs in a container: PID 1 of its own PID namespace, with
its own /proc (unshare), reached from inside that namespace (nsenter), as
`kubectl exec` does. The README's exec probe is run as written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import DEADLINE, HOSTS, THREADCTL, Host, wait_until


def _namespaced(env: dict[str, str]) -> Host:
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("nsenter") is None:
        pytest.skip("needs util-linux's unshare and nsenter")
    probe = subprocess.run([unshare, "--pid", "--fork", "--mount-proc", "true"], check=False)
    if probe.returncode != 0:
        pytest.skip("cannot make PID and mount namespaces here (needs root or user namespaces)")
    return Host(
        [unshare, "--pid", "--fork", "--mount-proc", sys.executable, str(HOSTS / "workers.py")],
        env,
    )


def _pid_one(host: Host) -> int:
    """The host's PID outside its namespace (unshare's child)."""

    def child() -> int | None:
        children = Path(f"/proc/{host.pid}/task/{host.pid}/children").read_text().split()
        return int(children[0]) if children else None

    return int(wait_until(child, what="unshare's child"))


def test_the_readme_exec_probe_works_inside_the_containers_namespace(
    env: dict[str, str],
) -> None:
    host = _namespaced(env)
    try:
        inside = ["nsenter", "--target", str(_pid_one(host)), "--pid", "--mount"]
        probe = subprocess.run(
            [*inside, THREADCTL, "health", "--pid", "1"],  # the README's probe
            env=env, capture_output=True, text=True, timeout=DEADLINE, check=False,
        )  # fmt: skip
        listing = subprocess.run(
            [*inside, THREADCTL, "list", "--pid", "1"],
            env=env, capture_output=True, text=True, timeout=DEADLINE, check=False,
        )  # fmt: skip
    finally:
        host.stop()

    assert host.ready["socket"].endswith("/1.sock")  # it is PID 1 in there
    assert (probe.returncode, probe.stdout) == (0, "SERVING\n"), probe.stderr
    assert listing.returncode == 0, listing.stderr
    assert "coop-1" in listing.stdout
