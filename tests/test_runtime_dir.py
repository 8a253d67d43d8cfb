"""The runtime directory cannot be taken from us (issue 18.7): an unsafe
default directory (another user's, a symlink, open to others) makes install()
use a private fallback beside it that clients find too; with no safe place at
all, install() raises UnsafeRuntimeDirectory and `python -m threadctl` runs the
program without the server, after one warning line."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

import threadctl
from support import DEADLINE, HOSTS, THREADCTL, Host, connect
from threadctl.client import Client, ClientError, running_servers
from threadctl.client._discovery import address_for_pid
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

NOBODY = 65534  # plays the other local user
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to own files as another uid")


def _can_make_private_tmp() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return False
    probe = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs tmpfs /tmp"]  # fmt: skip
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


private_tmp = pytest.mark.skipif(
    not _can_make_private_tmp(), reason="needs root and mount namespaces (unshare, nsenter)"
)


def _listed(address: str) -> set[str]:
    with connect(address) as channel:
        listing = pb_grpc.ThreadControlStub(channel).ListThreads(
            pb.ListThreadsRequest(), timeout=DEADLINE
        )
    return {t.name for t in listing.threads}


@pytest.fixture
def squatted(request: pytest.FixtureRequest, runtime: Path, tmp_path: Path) -> Path:
    """The default directory `<runtime>/threadctl`, made unsafe in one way."""
    default = runtime / "threadctl"
    if request.param == "open":
        default.mkdir()
        os.chmod(default, 0o755)
    elif request.param == "symlink":
        ours = tmp_path / "ours"
        ours.mkdir(mode=0o700)
        default.symlink_to(ours)
    else:  # another user's
        if os.geteuid() != 0:
            pytest.skip("needs root, to own a directory as another uid")
        default.mkdir(mode=0o700)
        os.chown(default, NOBODY, NOBODY)
    return default


@pytest.mark.parametrize("squatted", ["open", "symlink", "other-user"], indirect=True)
def test_an_unsafe_default_directory_falls_back_to_a_private_one(
    squatted: Path, runtime: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="threadctl"), threadctl.install() as server:
        fallback = server.socket_path.parent
        info = os.lstat(fallback)

        assert fallback.parent == runtime
        assert fallback.name.startswith("threadctl-")
        assert stat.S_ISDIR(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o700
        assert info.st_uid == os.geteuid()
        assert address_for_pid(os.getpid()) == server.address
        assert [s.socket_path for s in running_servers()] == [server.socket_path]
        assert "threadctl-serve" in _listed(server.address)
        [warning] = [r.getMessage() for r in caplog.records if r.name == "threadctl"]
        assert warning.startswith(f"threadctl: {squatted}")
        assert warning.endswith(f"; serving from {fallback} instead")
    assert not any(os.scandir(squatted)) if squatted.is_dir() else True  # nothing put there


def test_the_fallback_is_reused_by_the_next_install(runtime: Path) -> None:
    (runtime / "threadctl").mkdir()
    os.chmod(runtime / "threadctl", 0o755)

    with threadctl.install() as first:
        pass
    with threadctl.install() as second:
        assert second.socket_path.parent == first.socket_path.parent
        assert len(list(runtime.glob("threadctl-*"))) == 1


@as_root
def test_a_fallback_another_user_planted_is_never_used(runtime: Path) -> None:
    """Another user may pick a fallback's name too, with a socket in it for a
    live PID (1): neither install() nor discovery goes in there."""
    (runtime / "threadctl").mkdir()
    os.chmod(runtime / "threadctl", 0o755)
    planted = runtime / "threadctl-0000"
    planted.mkdir(mode=0o700)
    (planted / "1.sock").touch()
    os.chown(planted, NOBODY, NOBODY)

    with threadctl.install() as server:
        assert server.socket_path.parent not in (planted, runtime / "threadctl")
        assert {s.pid for s in running_servers()} == {os.getpid()}
    assert sorted(os.listdir(planted)) == ["1.sock"]


def test_no_safe_place_at_all_is_an_unsafe_runtime_directory(runtime: Path) -> None:
    os.chmod(runtime, 0o777)  # others could rename anything in it away: no fallback helps

    with pytest.raises(threadctl.UnsafeRuntimeDirectory, match="writable by others and not sticky"):
        threadctl.install()
    assert os.listdir(runtime) == []


# --- the attack of issue 18.7, in a mount namespace with a /tmp of its own --------------


def _in_private_tmp(setup: str, *argv: str) -> list[str]:
    """argv that runs `argv` in a new mount namespace whose /tmp is an empty
    tmpfs (the machine's /tmp is untouched), after the shell lines `setup`."""
    script = f'mount -t tmpfs -o mode=1777 tmpfs /tmp; {setup}; exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-euc", script, "sh", *argv]


# What another local user can do before we start: create our default directory.
DEFAULT = f"/tmp/threadctl-{os.geteuid()}"
SQUAT = f"mkdir {DEFAULT}; chown {NOBODY}:{NOBODY} {DEFAULT}"


@pytest.fixture
def no_xdg(env: dict[str, str]) -> dict[str, str]:
    env.pop("XDG_RUNTIME_DIR", None)
    return env


def _cli_in(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, run in the host's mount namespace (where its /tmp is)."""
    return subprocess.run(
        ["nsenter", "--target", str(host.pid), "--mount", "--", THREADCTL, *args],
        env=host.env, capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip


@private_tmp
def test_a_squatted_tmp_directory_does_not_stop_the_launcher(no_xdg: dict[str, str]) -> None:
    script = str(HOSTS / "plain_script.py")
    host = Host(_in_private_tmp(SQUAT, sys.executable, "-m", "threadctl", script, "a"), no_xdg)
    try:
        listed = _cli_in(host, "list", "--pid", str(host.pid), "--json")
        ps = _cli_in(host, "ps")

        assert host.ready["argv"] == [script, "a"]
        assert listed.returncode == 0, listed.stderr
        assert "plain-worker" in {t["name"] for t in json.loads(listed.stdout)["threads"]}
        assert ps.returncode == 0, ps.stderr
        assert str(host.pid) in ps.stdout
        assert f"/tmp/threadctl-{os.geteuid()}-" in ps.stdout
        [warning] = host.stderr_lines
        assert warning.startswith(
            f"threadctl: /tmp/threadctl-{os.geteuid()} belongs to uid {NOBODY}, not to this user"
        )
    finally:
        assert host.stop() == 0


@private_tmp
def test_with_no_safe_place_the_program_runs_without_the_server(no_xdg: dict[str, str]) -> None:
    """/tmp squatted and read-only: no fallback can be made."""
    setup = f"{SQUAT}; mount -o remount,ro /tmp"
    script = str(HOSTS / "plain_script.py")
    host = Host(_in_private_tmp(setup, sys.executable, "-m", "threadctl", script, "a"), no_xdg)
    embedded = subprocess.run(
        _in_private_tmp(setup, sys.executable, "-c",
                        "import threadctl\n"
                        "try:\n    threadctl.install()\n"
                        "except threadctl.UnsafeRuntimeDirectory as error:\n    print(error)\n"),
        env=no_xdg, capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip
    try:
        assert host.ready["argv"] == [script, "a"]
        assert host.stop() == 0
        reason = (
            f"/tmp/threadctl-{os.geteuid()} belongs to uid {NOBODY}, not to this user"
            f" ({os.geteuid()}), and no private directory can be made in /tmp:"
            " Read-only file system"
        )
        assert host.stderr_lines == [
            f"threadctl: warning: running {script} without the control server: {reason}"
        ]
        assert embedded.stdout == reason + "\n", embedded.stderr
    finally:
        host.stop()


# --- the client's side (issue 18.4): it checks what it connects to -------------------

SECRET = "root-secret-token-0123456789"


@pytest.fixture
def attacker_dir() -> Iterator[Path]:
    """A directory of the other user's, that anyone may enter (as in /tmp)."""
    directory = Path(tempfile.mkdtemp(prefix="threadctl-attacker-", dir="/tmp"))
    os.chmod(directory, 0o755)
    os.chown(directory, NOBODY, NOBODY)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def impostor(env: dict[str, str]) -> Iterator[Callable[..., Host]]:
    """Start tests/hosts/impostor.py (it becomes uid 65534); all end after the test."""
    started: list[Host] = []

    def start(*args: str, prefix: Sequence[str] = ()) -> Host:
        host = Host([*prefix, sys.executable, str(HOSTS / "impostor.py"), *args], env)
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


def _calls(impostor: Host) -> list[str]:
    """The authorization values the impostor received."""
    impostor.send("calls")
    return json.loads(impostor.expect("CALLS ")[len("CALLS ") :])


@as_root
def test_root_sends_a_token_it_was_given_to_no_other_users_socket(
    attacker_dir: Path, impostor: Callable[..., Host], env: dict[str, str]
) -> None:
    socket_path = attacker_dir / "app.sock"
    fake = impostor("--socket", str(socket_path))

    result = subprocess.run(
        [THREADCTL, "list", "--target", str(socket_path)], env={**env, "THREADCTL_TOKEN": SECRET},
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip

    assert result.returncode == 7
    assert result.stderr == (
        f"threadctl: {socket_path} belongs to uid {NOBODY}, not to you; not sending your token\n"
    )
    assert _calls(fake) == []


@as_root
def test_a_socket_swapped_for_a_symlink_never_gets_the_owners_token(
    attacker_dir: Path,
    impostor: Callable[..., Host],
    start_host: Callable[..., Host],
    tmp_path: Path,
) -> None:
    """The other user keeps flipping a symlink between our real socket and
    theirs, with a symlink to our token beside it: checking by path and then
    connecting by path sent our token to them about 1 in 20 times."""
    ours = tmp_path / "app.sock"
    start_host("plain_script.py", launcher=["-m", "threadctl", "--socket", str(ours)])
    token = ours.with_suffix(".token").read_text().strip()
    theirs, link = attacker_dir / "impostor.sock", attacker_dir / "app.sock"
    token_link = ["--link", str(attacker_dir / "app.token"), str(ours.with_suffix(".token"))]
    flip = ["--flip", str(link), str(ours), str(theirs)]
    fake = impostor("--socket", str(theirs), *token_link, *flip)

    outcomes: dict[str, int] = {}
    for _ in range(200):
        try:
            with Client(f"unix:{link}", timeout=5) as client:
                client.list_threads()
            outcome = "listed"
        except ClientError as error:
            outcome = type(error).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    assert not [value for value in _calls(fake) if token in value]
    assert outcomes == {"NotAllowed": 200}


@private_tmp
def test_a_socket_planted_for_our_pid_in_a_squatted_directory_is_never_used(
    no_xdg: dict[str, str], impostor: Callable[..., Host]
) -> None:
    """Another user made /tmp/threadctl-<uid> first, and serves a socket and a
    token named after our PID in it: `list --pid` shows our process."""
    script = str(HOSTS / "plain_script.py")
    host = Host(_in_private_tmp(SQUAT, sys.executable, "-m", "threadctl", script), no_xdg)
    try:
        planted = f"{DEFAULT}/{host.pid}"
        fake = impostor("--socket", f"{planted}.sock", "--token", f"{planted}.token",
                        "--pid", str(host.pid),
                        prefix=["nsenter", "--target", str(host.pid), "--mount", "--"])  # fmt: skip
        listed = _cli_in(host, "list", "--pid", str(host.pid), "--json")

        assert listed.returncode == 0, listed.stderr
        assert "plain-worker" in {t["name"] for t in json.loads(listed.stdout)["threads"]}
        assert _calls(fake) == []
    finally:
        assert host.stop() == 0
