"""Finding the control server to talk to: by PID, by address, or the only one.

Servers listen on `<runtime dir>/<pid>.sock`, or in a private fallback beside
the runtime directory when that is unsafe (see threadctl._paths), so the
client can list this user's threadctl processes without asking anyone. Only
directories that pass the server's own safety check are searched: a socket
another user planted in a directory they own is never found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from threadctl import _paths
from threadctl.client._errors import TargetNotFound

ENV_TARGET = "THREADCTL_TARGET"


@dataclass(frozen=True)
class RunningServer:
    pid: int
    socket_path: Path

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
    for searched in [directory] if directory else _paths.runtime_dirs():
        try:
            entries = list(searched.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.suffix != _paths.SOCKET_SUFFIX or not entry.stem.isdigit():
                continue
            pid = int(entry.stem)
            if pid not in found and os.path.exists(f"/proc/{pid}"):
                found[pid] = RunningServer(pid, entry)
    return sorted(found.values(), key=lambda s: s.pid)


def address_for_pid(pid: int) -> str:
    """The gRPC address of process `pid`'s control server.

    Raises:
        TargetNotFound: the process does not exist or has no control socket.
    """
    if pid <= 0:
        raise TargetNotFound(f"invalid PID {pid}")
    if not os.path.exists(f"/proc/{pid}"):
        raise TargetNotFound(f"no process with PID {pid}")
    path = _paths.find_socket(pid)
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
    """Decide which server to talk to: --pid, then --target, then $THREADCTL_TARGET,
    then the only threadctl process of this user.

    Raises:
        TargetNotFound: nothing given and zero or several servers running.
    """
    if pid is not None:
        return address_for_pid(pid)
    if target:
        return normalize_address(target)
    if env.get(ENV_TARGET):
        return normalize_address(env[ENV_TARGET])
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
