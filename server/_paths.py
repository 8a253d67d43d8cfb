"""Where control sockets live, and the checks that keep other users out.

Shared by the server (which creates the socket) and the client (which finds
it by PID). The directory, not the socket mode, is what keeps other users out:
it is created 0700 and refused if it is not ours, so a socket inside it is
unreachable for anyone but its owner and root.

The default directory can be taken: without `XDG_RUNTIME_DIR` it is
`/tmp/threadctl-<uid>`, a name any local user can create first (issue 18.7).
Then the server falls back to a private directory beside it,
`<default>-<random>` (`tempfile.mkdtemp`: a fresh name, created 0700 by us),
and the client finds it by listing `<default>-*` beside the default. The name
is only a hint and needs no record anywhere: what makes a directory ours is
checked with lstat (a real directory, not a symlink, owned by our euid, no
access for group or others) inside a parent where nobody else can rename or
replace it (not writable by others, or sticky like /tmp). Another user can
create `<default>-x` too, but never one that passes that check, and
server and client apply the same check, so both skip it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from threadctl.errors import InvalidArgument, UnsafeRuntimeDirectory

SOCKET_SUFFIX = ".sock"
# sockaddr_un.sun_path is 108 bytes with the terminating NUL; gRPC refuses more.
MAX_SOCKET_PATH_BYTES = 107


def runtime_dir() -> Path:
    """The default per-user directory that holds the control sockets.

    `$XDG_RUNTIME_DIR/threadctl` when that variable names a directory (it is
    per-user and 0700 by the XDG spec), else `/tmp/threadctl-<euid>`. If it is
    unsafe, sockets live in a fallback beside it (see runtime_dirs()).
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return default_runtime_dir(xdg if xdg and os.path.isdir(xdg) else None, os.geteuid())


def default_runtime_dir(xdg_runtime_dir: str | None, uid: int) -> Path:
    """runtime_dir() of a process whose XDG_RUNTIME_DIR (an existing
    directory, or None) and effective uid are these."""
    if xdg_runtime_dir:
        return Path(xdg_runtime_dir) / "threadctl"
    return Path(f"/tmp/threadctl-{uid}")


def runtime_dirs(default: Path | None = None, owner: int | None = None) -> list[Path]:
    """The existing directories that may hold sockets: the default (ours,
    unless given with its `owner`), then the fallbacks beside it; unsafe ones
    left out. Where clients look."""
    default = default or runtime_dir()
    return [d for d in (default, *_fallbacks(default)) if unsafe_reason(d, owner) is None]


def choose_runtime_dir() -> tuple[Path, str | None]:
    """The directory install() puts its socket in, creating it if need be.

    Returns:
        (directory, None) for the default directory; (a fallback, why the
        default was passed over) when the default is unsafe or cannot be made.

    Raises:
        UnsafeRuntimeDirectory: neither the default nor any fallback is safe,
            and no fallback can be created (parent not private, read-only,
            full).
    """
    default = runtime_dir()
    parent_problem = _unsafe_parent(default)
    if parent_problem is not None:  # then no directory in it can be ours for sure
        raise UnsafeRuntimeDirectory(f"no private directory for the socket: {parent_problem}")
    try:
        ensure_private_dir(default)
        return default, None
    except UnsafeRuntimeDirectory as error:
        passed_over = str(error)
    except OSError as error:
        passed_over = f"cannot create {default}: {error.strerror}"
    for fallback in _fallbacks(default):
        if unsafe_reason(fallback) is None:
            return fallback, passed_over
    import tempfile  # only now: with shutil, 0.7 MiB of every server's memory

    try:
        created = tempfile.mkdtemp(prefix=f"{default.name}-", dir=default.parent)
    except OSError as error:
        raise UnsafeRuntimeDirectory(
            f"{passed_over}, and no private directory can be made in {default.parent}:"
            f" {error.strerror}"
        ) from None
    return Path(created), passed_over


def find_socket(pid: int) -> Path | None:
    """Process `pid`'s default socket, in whichever of our directories it is."""
    for directory in runtime_dirs():
        path = socket_path_for_pid(pid, directory)
        if path.exists():
            return path
    return None


def socket_path_for_pid(pid: int, directory: Path) -> Path:
    """The socket path of process `pid` in `directory`."""
    return directory / f"{pid}{SOCKET_SUFFIX}"


def token_path_for_socket(socket_path: Path) -> Path:
    """Where the owner's token of a socket lives: beside it, `<pid>.token`."""
    return socket_path.with_suffix(".token")


def check_socket_path_length(path: Path) -> None:
    """Refuse a socket path the kernel cannot bind, before anything is created.

    Raises:
        InvalidArgument: over MAX_SOCKET_PATH_BYTES (gRPC would only say
            "Failed to bind", after the token file was written).
    """
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH_BYTES:
        raise InvalidArgument(
            f"socket path {path} is {size} bytes, over the {MAX_SOCKET_PATH_BYTES} a Unix socket"
            " path may have: pass a shorter socket_path (--socket), or set a shorter"
            " XDG_RUNTIME_DIR"
        )


def write_private_file(path: Path, text: str) -> None:
    """Create `path` with mode 0600 (replacing a leftover), never through a symlink.

    Raises:
        OSError: with the file's name. A file that could not be written in
            full (a full disk fails at the write or at the close) is removed.
    """
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except OSError as error:
        path.unlink(missing_ok=True)
        error.filename = error.filename or str(path)
        raise


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` 0700, or check that an existing one is safe to use.

    Raises:
        UnsafeRuntimeDirectory: it is a symlink, not a directory, not owned by
            the effective uid, or reachable by group or others; or its parent
            lets others replace it.
        OSError: it cannot be created (read-only or full file system).
    """
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError:
        if not os.path.lexists(directory):  # a read-only file system may say so first
            raise
    reason = unsafe_reason(directory)
    if reason is not None:
        raise UnsafeRuntimeDirectory(reason)


def unsafe_reason(directory: Path, owner: int | None = None) -> str | None:
    """Why `directory` is not private to us (or to uid `owner`), or None if it is.

    lstat, not stat: a symlink is refused even if it points at a directory of
    ours (another user may have planted it, to make us write elsewhere).
    """
    try:
        info = os.lstat(directory)
    except OSError as error:
        return f"{directory}: {error.strerror}"
    return why_not_private(directory, info, owner)


def why_not_private(directory: Path, info: os.stat_result, owner: int | None = None) -> str | None:
    """The check of unsafe_reason on `info`: an lstat of `directory`, or the
    fstat of a descriptor the client opened it as (so that what it checks is
    what it then connects through, see threadctl.client._local_socket)."""
    owner = os.geteuid() if owner is None else owner
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        return f"{directory} is not a plain directory"
    if info.st_uid != owner:
        whose = "this user" if owner == os.geteuid() else "its process's user"
        return f"{directory} belongs to uid {info.st_uid}, not to {whose} ({owner})"
    if stat.S_IMODE(info.st_mode) & 0o077:
        return f"{directory} has mode {stat.S_IMODE(info.st_mode):04o}; it must be 0700"
    return _unsafe_parent(directory)


def is_runtime_dir_name(directory: Path) -> bool:
    """Whether `directory` is named as our runtime directory or one of its
    fallbacks is: sockets found there must pass the server's own check."""
    default = runtime_dir()
    return directory == default or (
        directory.parent == default.parent and directory.name.startswith(f"{default.name}-")
    )


def _unsafe_parent(directory: Path) -> str | None:
    """Why others could rename `directory` away and put theirs in its place:
    a parent they may write to that is not sticky (/tmp is sticky)."""
    try:
        info = os.stat(directory.parent)
    except OSError as error:
        return f"{directory.parent}: {error.strerror}"
    if stat.S_IMODE(info.st_mode) & 0o022 and not info.st_mode & stat.S_ISVTX:
        return f"{directory.parent} is writable by others and not sticky"
    return None


def _fallbacks(default: Path) -> list[Path]:
    """Candidates named `<default>-*` beside the default, in name order (so
    every process of the user picks the same one). Not checked yet."""
    try:
        with os.scandir(default.parent) as entries:
            names = [e.name for e in entries if e.name.startswith(f"{default.name}-")]
    except OSError:
        return []
    return [default.parent / name for name in sorted(names)]
