"""Where control sockets live, and the checks that keep other users out.

Shared by the server (which creates the socket) and the client (which finds
it by PID). The directory, not the socket mode, is what keeps other users out:
it is created 0700 and refused if it is not ours, so a socket inside it is
unreachable for anyone but its owner and root.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from threadctl.errors import UnsafeRuntimeDirectory

SOCKET_SUFFIX = ".sock"


def runtime_dir() -> Path:
    """The per-user directory that holds the control sockets.

    `$XDG_RUNTIME_DIR/threadctl` when that variable names a directory (it is
    per-user and 0700 by the XDG spec), else `/tmp/threadctl-<euid>`.
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "threadctl"
    return Path(f"/tmp/threadctl-{os.geteuid()}")


def socket_path_for_pid(pid: int, directory: Path | None = None) -> Path:
    """The default socket path of process `pid`."""
    return (directory or runtime_dir()) / f"{pid}{SOCKET_SUFFIX}"


def token_path_for_socket(socket_path: Path) -> Path:
    """Where the owner's token of a socket lives: beside it, `<pid>.token`."""
    return socket_path.with_suffix(".token")


def write_private_file(path: Path, text: str) -> None:
    """Create `path` with mode 0600 (replacing a leftover), never through a symlink."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` 0700, or check that an existing one is safe to use.

    Raises:
        UnsafeRuntimeDirectory: it is a symlink, not a directory, not owned by
            the effective uid, or reachable by group or others.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeRuntimeDirectory(f"{directory} is not a plain directory")
    if info.st_uid != os.geteuid():
        raise UnsafeRuntimeDirectory(
            f"{directory} belongs to uid {info.st_uid}, not to this user ({os.geteuid()})"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise UnsafeRuntimeDirectory(
            f"{directory} has mode {stat.S_IMODE(info.st_mode):04o}; it must be 0700"
        )
