"""Finding the control server to talk to: by PID, by address, or the only one.

Servers listen on `<runtime dir>/<pid>.sock`, or in a private fallback beside
the runtime directory when that is unsafe (see threadctl._paths), so the
client can list this user's threadctl processes without asking anyone. Only
directories that pass the server's own safety check, for their user, are
searched: a socket another user planted in a directory they own is never
found.

A process's socket is where *its* user and environment put it: root (`sudo
threadctl list --pid P`) looks in the runtime directory of P's user and
XDG_RUNTIME_DIR (read from /proc/P), not in root's own; a process with a root
of its own (a container) is seen through /proc/P/root, its socket named by
its PID in its own PID namespace (NSpid). As root, `ps` lists every user's
default directories.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from threadctl import _paths
from threadctl._core import procfs
from threadctl.client._errors import TargetNotFound

ENV_TARGET = "THREADCTL_TARGET"


@dataclass(frozen=True)
class RunningServer:
    pid: int
    socket_path: Path
    uid: int = -1  # the socket directory's user (-1: not known)

    @property
    def address(self) -> str:
        return f"unix:{self.socket_path}"


def running_servers(directory: Path | None = None) -> list[RunningServer]:
    """This user's processes that have a control socket, oldest PID first.

    Searches `directory`, or else the runtime directory and its fallbacks
    (for a PID found in several, the first). Sockets of processes that no
    longer exist are skipped (the next install in a process with that PID
    replaces them).
    """
    found: dict[int, RunningServer] = {}
    searched_dirs = (
        [(directory, -1)] if directory else [(d, os.geteuid()) for d in _paths.runtime_dirs()]
    )
    if directory is None and os.geteuid() == 0:
        searched_dirs += _other_users_dirs()
    for searched, uid in searched_dirs:
        try:
            entries = list(searched.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.suffix != _paths.SOCKET_SUFFIX or not entry.stem.isdigit():
                continue
            pid = int(entry.stem)
            if pid not in found and _runs_as(pid, uid):
                found[pid] = RunningServer(pid, entry, uid)
    return sorted(found.values(), key=lambda s: s.pid)


def _other_users_dirs() -> list[tuple[Path, int]]:
    """Every user's default runtime directories and fallbacks (for root's
    `ps`): `/tmp/threadctl-<uid>*` and `/run/user/<uid>/threadctl`, each only
    if it is private to the uid its name gives."""
    found = []
    candidates = [(p, p.name.split("-")[1]) for p in map(Path, glob.glob("/tmp/threadctl-*"))]
    candidates += [(p, p.parent.name) for p in map(Path, glob.glob("/run/user/*/threadctl"))]
    for path, uid_text in candidates:
        uid = int(uid_text) if uid_text.isdigit() else -1
        if uid not in (-1, 0) and _paths.unsafe_reason(path, uid) is None:
            found.append((path, uid))
    return found


def _runs_as(pid: int, uid: int) -> bool:
    """Whether process `pid` exists (and, for a known `uid`, runs as it: a
    socket whose PID now names another user's process is not listed)."""
    status = procfs.read_status(pid)
    return status is not None and (uid == -1 or _effective_uid(status) == uid)


def _effective_uid(status: Mapping[str, str]) -> int:
    return int(status["Uid"].split()[1])


def _socket_of_process(pid: int) -> Path | None:
    """Where process `pid` put its default socket, as it sees its files (see
    the module docstring); None if it has none there, or its environment
    cannot be read (another user's process, and we are not root)."""
    status = procfs.read_status(pid)
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    except OSError:
        return None
    if status is None:
        return None
    prefix = procfs.root_prefix(pid)
    xdg = os.fsdecode(environ.get(b"XDG_RUNTIME_DIR", b""))
    uid = _effective_uid(status)
    default = _paths.default_runtime_dir(xdg if xdg and os.path.isdir(prefix + xdg) else None, uid)
    in_its_namespace = int(status.get("NSpid", str(pid)).split()[-1])
    for directory in _paths.runtime_dirs(Path(prefix + str(default)), owner=uid):
        path = _paths.socket_path_for_pid(in_its_namespace, directory)
        if path.exists():
            return path
    return None


def address_for_pid(pid: int) -> str:
    """The gRPC address of process `pid`'s control server.

    Raises:
        TargetNotFound: the process does not exist or has no control socket.
    """
    if pid <= 0:
        raise TargetNotFound(f"invalid PID {pid}")
    if not os.path.exists(f"/proc/{pid}"):
        raise TargetNotFound(f"no process with PID {pid}")
    path = _socket_of_process(pid) or _paths.find_socket(pid)
    if path is None:
        raise TargetNotFound(
            f"process {pid} runs no threadctl server (no socket {pid}{_paths.SOCKET_SUFFIX}"
            f" in {_searched()}); start it with threadctl.install() or `python -m threadctl`"
        )
    return f"unix:{path}"


def _searched() -> str:
    """The directories discovery looks in, for messages."""
    dirs = _paths.runtime_dirs()
    return ", ".join(map(str, dirs)) if dirs else f"{_paths.runtime_dir()} (missing or unsafe)"


def normalize_address(target: str) -> str:
    """A gRPC target from a socket path or a gRPC target string."""
    if target.startswith(("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:")):
        return target
    if "/" in target or os.path.exists(target):
        return f"unix:{os.path.abspath(target)}"
    return target  # host:port


def resolve_address(
    pid: int | None = None, target: str | None = None, env: Mapping[str, str] = os.environ
) -> str:
    """Decide which server to talk to: --pid, then --target, then $THREADCTL_TARGET
    (a bare number there is a PID), then the only threadctl process of this user.

    Raises:
        TargetNotFound: nothing given and zero or several servers running.
    """
    if pid is not None:
        return address_for_pid(pid)
    target = target or env.get(ENV_TARGET)
    if target and target.isdigit() and not os.path.exists(target):
        return address_for_pid(int(target))  # `--target 13920`: a PID, not a host name
    if target:
        return normalize_address(target)
    servers = running_servers()
    if len(servers) == 1:
        return servers[0].address
    if not servers:
        raise TargetNotFound(
            f"no threadctl process of this user is running (looked in {_searched()});"
            " give --pid or --target"
        )
    pids = ", ".join(str(s.pid) for s in servers)
    raise TargetNotFound(f"several threadctl processes are running ({pids}): pick one with --pid")
