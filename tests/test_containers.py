"""A process as it runs in a container: PID 1 of its own PID namespace, with
its own /proc (unshare) and, where asked, its own /tmp. Reached from inside
those namespaces (nsenter), as `kubectl exec` does (the README's exec probe
is run as written), and from outside by its PID on the host, as root on the
node would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import DEADLINE, HOSTS, THREADCTL, Host, readme_blocks, run_cli, wait_until

# A private /tmp, as a container has: mounted inside the new mount namespace.
_PRIVATE_TMP = 'mount -t tmpfs tmpfs /tmp && exec "$0" "$@"'


def _namespaced(env: dict[str, str], *, private_tmp: bool = False) -> Host:
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("nsenter") is None:
        pytest.skip("needs util-linux's unshare and nsenter")
    command = [unshare, "--pid", "--fork", "--mount-proc"]
    probe = subprocess.run([*command, "true"], check=False)
    if probe.returncode != 0:
        pytest.skip("cannot make PID and mount namespaces here (needs root or user namespaces)")
    if private_tmp:
        command += ["sh", "-c", _PRIVATE_TMP]
        env = {k: v for k, v in env.items() if k != "XDG_RUNTIME_DIR"}  # so: /tmp/threadctl-0
    return Host([*command, sys.executable, str(HOSTS / "workers.py")], env)


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


def test_a_process_in_its_own_namespaces_is_reached_from_outside_by_its_pid(
    env: dict[str, str],
) -> None:
    # Its socket is /tmp/threadctl-0/1.sock in a /tmp only it sees: found
    # through /proc/PID/root, by its PID in its own namespace.
    host = _namespaced(env, private_tmp=True)
    try:
        outer = _pid_one(host)
        listing = run_cli("list", "--json", "--pid", str(outer), env=env)
    finally:
        host.stop()

    assert host.ready["socket"] == "/tmp/threadctl-0/1.sock"
    assert listing.returncode == 0, listing.stderr
    assert {"coop-1", "coop-2"} <= {t["name"] for t in json.loads(listing.stdout)["threads"]}


# A stand-in for kubectl, for the README's many-pods loop: the pods are
# hosts in their own namespaces (named by their PID outside), `get pods`
# lists them and `exec POD -- CMD` runs CMD in that pod's namespaces.
_KUBECTL = """#!/bin/sh
case "$1" in
  get) for pid in $PODS; do echo "pod/$pid"; done ;;
  exec) pod=${2#pod/}; shift 3; exec nsenter --target "$pod" --pid --mount "$@" ;;
  *) echo "stand-in kubectl: $*" >&2; exit 2 ;;
esac
"""


def test_the_readme_many_pods_loop_runs_as_written(env: dict[str, str], tmp_path: Path) -> None:
    (loop,) = readme_blocks("for pod in $(kubectl")
    pods = [_namespaced(env, private_tmp=True)]
    try:
        pods.append(_namespaced(env, private_tmp=True))  # both are /tmp/threadctl-0/1.sock
        inner = [_pid_one(pod) for pod in pods]
        kubectl = tmp_path / "bin" / "kubectl"
        kubectl.parent.mkdir()
        kubectl.write_text(_KUBECTL)
        kubectl.chmod(0o755)
        path = f"{kubectl.parent}:{Path(THREADCTL).parent}:{env['PATH']}"
        done = subprocess.run(
            ["sh", "-c", loop],
            env={**{k: v for k, v in env.items() if k != "XDG_RUNTIME_DIR"}, "PATH": path,
                 "PODS": " ".join(map(str, inner))},
            capture_output=True, text=True, timeout=DEADLINE * 2, check=False,
        )  # fmt: skip
    finally:
        for pod in pods:
            pod.stop()

    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [line[0] for line in lines] == [f"pod/{pid}" for pid in inner]
    assert all(len(line) == 4 and line[1].isdigit() for line in lines), done.stdout
