"""Opening a Unix socket target so that what is checked is what is connected to.

Checking paths and then connecting by path races: between the two, whoever
may write to the directory can swap the socket for a symlink to theirs. A
symlink flip sent the victim's token to another user's socket 1 in 20 runs
(issue 18.4). So the client opens the socket's directory once, with
O_DIRECTORY|O_NOFOLLOW, checks the open directory (fstat), looks at the
socket and the token beside it through that descriptor (lstat and open
relative to it, never following a symlink), and gives gRPC the path
`/proc/self/fd/<fd>/<name>`: every connect, reconnects included, resolves
through the very directory that was checked.

What is checked:
- A directory named as our runtime directory or one of its fallbacks (where
  `--pid`, `ps` and discovery look) must pass the server's own check
  (threadctl._paths.why_not_private): ours, 0700, in a parent nobody else
  can rename it in.
- The socket must be a socket (not a symlink).
- A token is sent only to a socket owned by the token's owner: the token
  beside the socket (`<name>.token`, a regular file, not a symlink) must
  belong to the socket's owner; a token given by the caller
  (THREADCTL_TOKEN, a token file) only to a socket of the calling user,
  root included (root's token is not another user's).
- And then only if nobody but that owner and root can replace entries in the
  directory: it belongs to one of them, and is not writable by others
  unless sticky (like /tmp, where nobody may rename another's entry).

Hazard: the descriptor stays open as long as the channel (Client.close()
closes it); root, who may write anywhere, is trusted throughout.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from threadctl import _paths
from threadctl.client._errors import InvalidArgument, NotAllowed, TargetUnavailable

# sockaddr_un.sun_path holds 107 bytes and a NUL.
_MAX_SOCKET_PATH = 107


@dataclass
class LocalSocket:
    """A Unix socket target, bound to the directory descriptor it was checked through."""

    path: Path  # as the caller named it, for messages
    address: str  # the gRPC target: through the directory's descriptor
    owner: int  # uid of the socket
    token: str | None  # what to send: the caller's, the owner's beside it, or none
    dir_fd: int

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> LocalSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_local_socket(path: Path, *, token: str | None = None) -> LocalSocket:
    """Open the Unix socket target `path` for a client (see the module docstring).

    Args:
        path: the socket's path.
        token: the caller's token, or None to send the owner's token from the
            file beside the socket (none if there is no such file).

    Raises:
        TargetUnavailable: there is no socket at `path`.
        NotAllowed: a check failed; nothing was sent anywhere.
        InvalidArgument: the socket's name is too long to be reached through
            the directory's descriptor.
    """
    path = Path(os.path.abspath(path))
    directory = path.parent
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TargetUnavailable(f"cannot reach {path}: no such directory") from None
    except PermissionError:
        raise NotAllowed(f"cannot reach {path}: permission denied") from None
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotAllowed(f"{directory} is not a plain directory; not connecting") from None
        raise
    try:
        return _checked(path, dir_fd, token)
    except BaseException:
        os.close(dir_fd)
        raise


def _checked(path: Path, dir_fd: int, token: str | None) -> LocalSocket:
    directory, name = path.parent, path.name
    try:
        socket_info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        raise TargetUnavailable(
            f"cannot reach the threadctl server at unix:{path}: no such socket"
        ) from None
    except PermissionError:
        raise NotAllowed(f"cannot reach {path}: permission denied") from None
    if not stat.S_ISSOCK(socket_info.st_mode):
        raise NotAllowed(f"{path} is not a socket (a symbolic link?); not connecting")
    owner = socket_info.st_uid
    dir_info = os.fstat(dir_fd)
    if _paths.is_runtime_dir_name(directory):
        problem = _paths.why_not_private(directory, dir_info)
        if problem is not None:
            raise NotAllowed(f"{problem}; not connecting to {path}")
    if token is not None:
        if owner != os.geteuid():
            raise NotAllowed(f"{path} belongs to uid {owner}, not to you; not sending your token")
    else:
        token = _token_beside(path, dir_fd, owner)
    if token is not None:
        _check_not_replaceable(directory, dir_info, owner)
    address = f"/proc/self/fd/{dir_fd}/{name}"
    if len(os.fsencode(address)) > _MAX_SOCKET_PATH:
        raise InvalidArgument(f"the socket name {name!r} is too long")
    return LocalSocket(path, f"unix:{address}", owner, token, dir_fd)


def _token_beside(path: Path, dir_fd: int, owner: int) -> str | None:
    """The owner's token from `<name>.token` beside the socket, read through
    the directory's descriptor; None if there is none."""
    token_path = _paths.token_path_for_socket(path)
    try:
        fd = os.open(token_path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except PermissionError:
        with contextlib.suppress(OSError):
            owner = os.lstat(token_path.name, dir_fd=dir_fd).st_uid
        raise NotAllowed(
            f"cannot read {token_path}: it belongs to uid {owner} (run as that user or root)"
        ) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NotAllowed(
                f"{token_path} is a symbolic link; not reading or sending a token"
            ) from None
        raise
    with os.fdopen(fd) as opened:
        info = os.fstat(opened.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != owner:
            raise NotAllowed(
                f"{path} belongs to uid {owner} but {token_path} to uid {info.st_uid};"
                " not sending the token"
            )
        return opened.read(4096).strip()


def _check_not_replaceable(directory: Path, info: os.stat_result, owner: int) -> None:
    """Refuse a directory in which others than `owner` and root may replace
    the socket: one of someone else's, or writable by others and not sticky."""
    if info.st_uid not in (owner, 0):
        raise NotAllowed(
            f"{directory} belongs to uid {info.st_uid}, not to the socket's owner ({owner});"
            " not sending the token"
        )
    if stat.S_IMODE(info.st_mode) & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise NotAllowed(
            f"{directory} is writable by others, who could swap the socket; not sending the token"
        )
