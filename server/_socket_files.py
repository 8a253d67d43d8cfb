"""The control socket's files on disk: claiming a path, cleaning up after dead
processes, and asking a socket whether a gRPC server really answers there.

Plain sockets only: these checks must not depend on gRPC's own state (which
may be broken in a forked child).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from threadctl import _paths
from threadctl.errors import SocketInUse


def answers_http2(path: Path, timeout: float) -> bool:
    """Whether the server at `path` answers an HTTP/2 connection preface with
    its SETTINGS frame (what every gRPC server sends first). Plain sockets, no
    gRPC, so the check itself cannot hang on gRPC's state."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        header = b""
        try:
            probe.connect(str(path))
            probe.sendall(preface)
            while len(header) < 9:  # frame header: length (3), type (1), flags, stream
                chunk = probe.recv(9 - len(header))
                if not chunk:
                    return False
                header += chunk
        except OSError:
            return False
    return header[3:4] == b"\x04"  # SETTINGS


def why_unbindable(path: Path) -> str | None:
    """After gRPC refused to bind `path` (it says only "Failed to bind"): the
    reason the kernel gives for a plain bind there, e.g. "No space left on
    device" or "Permission denied"; None if a plain bind works. A socket file
    the probe made is removed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(str(path))
        except OSError as error:
            return error.strerror or str(error)
    path.unlink(missing_ok=True)
    return None


def remove_stale_sockets(directory: Path) -> None:
    """Remove sockets left in `directory` by processes that died without
    closing (SIGKILL), so `threadctl ps` and discovery stay accurate. A socket
    goes only if its process is gone and nobody answers on it."""
    for entry in directory.glob(f"*{_paths.SOCKET_SUFFIX}"):
        if entry.stem.isdigit() and not os.path.exists(f"/proc/{entry.stem}"):
            with contextlib.suppress(OSError, SocketInUse):
                claim_socket_path(entry)
                _paths.token_path_for_socket(entry).unlink(missing_ok=True)


def claim_socket_path(path: Path) -> None:
    """Remove a stale socket at `path`; refuse if a live server answers there.

    gRPC unlinks whatever is at the path when it binds, which would silently
    take over a live server's socket, so probe first.
    """
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: left behind by a dead process
    else:
        raise SocketInUse(f"a live server already listens on {path}")
    finally:
        probe.close()
