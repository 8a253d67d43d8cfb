"""install() fails clearly and cleanly (issue 18.14): a socket path the kernel
cannot bind is InvalidArgument before anything is created; a full disk or a
refused listener is ServerStartFailed, and the token file, the socket and
gRPC's listeners are gone again. `python -m threadctl` then runs the program
without the server, after one warning line."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import threadctl
from support import HOSTS, Host
from threadctl import Role, TokenGrant


def _listening_sockets() -> set[str]:
    """Inodes of the listening sockets this process has open."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            ours.add(target[len("socket:[") : -1])
    listening = set()
    for table, state_column, listen_state in (("unix", 5, "01"), ("tcp", 3, "0A")):
        with open(f"/proc/net/{table}") as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                inode = fields[6] if table == "unix" else fields[9]
                if inode in ours and fields[state_column] == listen_state:
                    listening.add(inode)
    return listening


def _path_of_length(directory: Path, size: int) -> Path:
    stem = size - len(os.fsencode(directory)) - len("/.sock")
    return directory / ("s" * stem + ".sock")


def test_a_socket_path_over_107_bytes_is_an_invalid_argument(tmp_path: Path) -> None:
    too_long, longest = _path_of_length(tmp_path, 108), _path_of_length(tmp_path, 107)

    with pytest.raises(threadctl.InvalidArgument) as refused:
        threadctl.install(socket_path=too_long)
    assert str(refused.value) == (
        f"socket path {too_long} is 108 bytes, over the 107 a Unix socket path may have:"
        " pass a shorter socket_path (--socket), or set a shorter XDG_RUNTIME_DIR"
    )
    assert os.listdir(tmp_path) == []
    with threadctl.install(socket_path=longest) as server:
        assert server.socket_path.exists()


def test_a_tcp_port_in_use_leaves_no_socket_token_or_listener(runtime: Path) -> None:
    busy = socket.create_server(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    listening, threads = _listening_sockets(), set(threading.enumerate())
    grant = TokenGrant("ci", "t" * 32, Role.READ)
    try:
        with pytest.raises(threadctl.ServerStartFailed) as failed:
            threadctl.install(tcp=f"127.0.0.1:{port}", tokens=[grant], insecure_plaintext_tcp=True)

        assert str(failed.value) == (
            f"threadctl cannot listen on 127.0.0.1:{port}: the address is in use,"
            " or not one of this host"
        )
        assert os.listdir(runtime / "threadctl") == []
        assert _listening_sockets() == listening  # gRPC let go of the Unix socket too
        assert set(threading.enumerate()) <= threads
    finally:
        busy.close()
    with threadctl.install(tcp=f"127.0.0.1:{port}", tokens=[grant], insecure_plaintext_tcp=True):
        pass  # nothing of the failed attempt is in the way


# --- a full file system: a tiny tmpfs ---------------------------------------------------


@pytest.fixture
def tiny_fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with no room left: `blocks` (no space for the token file's
    data) or `inodes` (room for the token file, none for the socket)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount, for a tiny tmpfs")
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir(mode=0o700)
    # inodes: the root directory and the token file, nothing more.
    options = "size=8k,mode=0700" if request.param == "blocks" else "nr_inodes=2,mode=0700"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        if request.param == "blocks":
            _fill(mountpoint / "filler")
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def _fill(path: Path) -> None:
    """Write `path` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left") as full:  # noqa: PT012 - ends by raising
            while True:
                os.write(fd, b"\0" * 4096)
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("tiny_fs", "step"),
    [("blocks", "write the token file"), ("inodes", "listen on unix:{path}")],
    indirect=["tiny_fs"],
)
def test_a_full_disk_is_server_start_failed_and_leaves_nothing(tiny_fs: Path, step: str) -> None:
    before = set(os.listdir(tiny_fs))
    path = tiny_fs / "app.sock"
    listening = _listening_sockets()

    with pytest.raises(threadctl.ServerStartFailed) as failed:
        threadctl.install(socket_path=path)

    reason = (
        f"[Errno 28] No space left on device: '{tiny_fs}/app.token'"
        if step.startswith("write")
        else "No space left on device"
    )
    assert str(failed.value) == f"threadctl cannot {step.format(path=path)}: {reason}"
    assert set(os.listdir(tiny_fs)) == before
    assert _listening_sockets() == listening


@pytest.mark.parametrize("tiny_fs", ["blocks"], indirect=True)
def test_the_launcher_runs_the_program_on_a_full_disk(tiny_fs: Path, env: dict[str, str]) -> None:
    env["XDG_RUNTIME_DIR"] = str(tiny_fs)
    script = str(HOSTS / "plain_script.py")
    host = Host([sys.executable, "-m", "threadctl", script, "x"], env)
    try:
        assert host.ready["argv"] == [script, "x"]
    finally:
        assert host.stop() == 0
    token = f"{tiny_fs}/threadctl/{host.pid}.token"
    assert host.stderr_lines == [
        f"threadctl: warning: running {script} without the control server: threadctl cannot"
        f" write the token file: [Errno 28] No space left on device: '{token}'"
    ]
    assert os.listdir(tiny_fs / "threadctl") == []
