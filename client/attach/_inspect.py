"""Decide whether a process may be attached to, before anything touches it.

Everything here reads /proc and nothing else: no ptrace, nothing written.
The order matters. Loading the agent into a process that is not CPython
kills it (DESIGN.md: `sleep` and `bash` died of "undefined symbol"), so
CPython and its version are established from /proc/PID/exe and
/proc/PID/maps (a `python3.X` executable or a mapped `libpython3.X.so`),
never by trying. A process that opted out of remote debugging
(PYTHON_DISABLE_REMOTE_DEBUG, `-X disable_remote_debug`, as CPython 3.14
defines them) is refused on every version, as are setuid/setgid processes,
processes another debugger traces, and stopped processes (the job would
never run). Permission is checked from status (readable by anyone) first, so
a process the caller may not trace gets the ptrace message, not a confusing
"permission denied" on its maps.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from threadctl._core import procfs
from threadctl.client._errors import TargetNotFound
from threadctl.client.attach._errors import NotAttachable, PtraceNotPermitted

OLDEST = (3, 10)
NEWEST_PTRACE = (3, 13)  # newer ones use sys.remote_exec (PEP 768)
_CAP_SYS_PTRACE = 19
_LIBPYTHON = re.compile(r"/libpython3\.(\d+)([a-z]*)\.so")
_EXECUTABLE = re.compile(r"python3\.(\d+)([a-z]*)")
_EXTENSION = re.compile(r"\.cpython-3(\d+)([a-z]*)-")


@dataclass(frozen=True)
class Target:
    """A process found fit to attach to."""

    pid: int
    uid: int
    gid: int
    python: tuple[int, int]
    abiflags: str  # "" or e.g. "t" (free-threaded), "d" (debug)
    start_ticks: int  # tells this process from a later one with the same PID
    root: str  # prefix under which the caller sees the process's files ("" or /proc/PID/root)

    @property
    def version_text(self) -> str:
        return f"{self.python[0]}.{self.python[1]}{self.abiflags}"


def inspect(pid: int) -> Target:
    """Check that `pid` is a CPython 3.10+ process this user may attach to.

    Raises:
        TargetNotFound: no such process (or it is a zombie).
        PtraceNotPermitted: the kernel would refuse ptrace.
        NotAttachable: not CPython, unsupported version, opted out,
            setuid/setgid, traced, or stopped.
    """
    status = _status(pid)
    uids, gids = status["Uid"].split(), status["Gid"].split()
    if len(set(uids)) > 1 or len(set(gids)) > 1:
        raise NotAttachable(f"process {pid} runs with changed privileges (setuid/setgid); refused")
    uid, gid = int(uids[0]), int(gids[0])
    _check_permission(pid, uid)
    exe = _read(pid, "exe", link=True).removesuffix(" (deleted)")
    if _setid_file(pid):
        raise NotAttachable(f"process {pid} runs a setuid/setgid program ({exe}); refused")
    python, abiflags = _python_of(pid, exe, _read(pid, "maps"))
    if status.get("TracerPid", "0") != "0":
        raise NotAttachable(
            f"process {pid} is being traced by process {status['TracerPid']} (a debugger?)"
        )
    state, start_ticks = process_stat(pid)
    if state in ("T", "t"):
        raise NotAttachable(f"process {pid} is stopped; resume it first (kill -CONT {pid})")
    _check_opt_out(pid, exe)
    return Target(pid, uid, gid, python, abiflags, start_ticks, procfs.root_prefix(pid))


def process_stat(pid: int) -> tuple[str, int]:
    """(state letter, start time in clock ticks) of `pid`; ("", 0) if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[19])
    except (OSError, IndexError, ValueError):
        return "", 0


def still_running(target: Target) -> bool:
    """True while the process we inspected (not a successor with its PID) lives."""
    state, start = process_stat(target.pid)
    return start == target.start_ticks and state not in ("", "Z", "X")


def task_exists(pid: int, tid: int) -> bool:
    return os.path.exists(f"/proc/{pid}/task/{tid}")


def _status(pid: int) -> dict[str, str]:
    status = procfs.read_status(pid)
    if status is None:
        raise TargetNotFound(f"no process with PID {pid}")
    if status.get("State", "").startswith(("Z", "X")):
        raise TargetNotFound(f"process {pid} has exited (zombie)")
    return status


def _check_permission(pid: int, uid: int) -> None:
    scope = _yama_scope()
    privileged = _has_cap_sys_ptrace()
    if scope == 3:
        raise PtraceNotPermitted(
            f"cannot attach to process {pid}: ptrace is disabled on this machine"
            " (kernel.yama.ptrace_scope=3, only a reboot lifts it)"
        )
    if (uid != os.geteuid() and not privileged) or (scope == 2 and not privileged):
        raise PtraceNotPermitted(ptrace_message(pid, uid, scope))


def ptrace_message(pid: int, uid: int, scope: int | None = None) -> str:
    """The one line that says why ptrace was refused and how to allow it."""
    scope = _yama_scope() if scope is None else scope
    yama = f", or kernel.yama.ptrace_scope={scope} allows less (set it to 0 or 1)" if scope else ""
    return (
        f"cannot attach to process {pid} (uid {uid}): ptrace not permitted for uid"
        f" {os.geteuid()}; run threadctl as the same user or as root, or give it"
        f" CAP_SYS_PTRACE{yama}"
    )


def _yama_scope() -> int:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0  # no Yama: classic ptrace permissions


def _has_cap_sys_ptrace() -> bool:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_SYS_PTRACE & 1)
    return False


def _read(pid: int, name: str, link: bool = False) -> str:
    path = f"/proc/{pid}/{name}"
    try:
        if link:
            return os.readlink(path)
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except PermissionError:
        raise PtraceNotPermitted(ptrace_message(pid, os.stat(f"/proc/{pid}").st_uid)) from None
    except FileNotFoundError:
        raise TargetNotFound(f"process {pid} exited") from None


def _setid_file(pid: int) -> bool:
    try:
        mode = os.stat(f"/proc/{pid}/exe").st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_ISUID | stat.S_ISGID))


def _python_of(pid: int, exe: str, maps: str) -> tuple[tuple[int, int], str]:
    base = os.path.basename(exe)
    found = _LIBPYTHON.search(maps) or _EXECUTABLE.fullmatch(base)
    if found is None and base in ("python", "python3"):
        found = _EXTENSION.search(maps)  # an unversioned name: its extension modules tell
    if found is None:
        raise NotAttachable(f"process {pid} ({exe}) is not a CPython process; nothing was injected")
    version = (3, int(found.group(1)))
    if version < OLDEST:
        raise NotAttachable(
            f"process {pid} runs CPython 3.{version[1]}; threadctl supports 3.10 and newer"
        )
    return version, found.group(2)


def _check_opt_out(pid: int, exe: str) -> None:
    environ = _read(pid, "environ").split("\0")
    if any(e.startswith("PYTHON_DISABLE_REMOTE_DEBUG=") and e.split("=", 1)[1] for e in environ):
        raise NotAttachable(
            f"process {pid} opted out of remote debugging (PYTHON_DISABLE_REMOTE_DEBUG is set)"
        )
    if os.path.basename(exe).startswith("python"):
        argv = _read(pid, "cmdline").split("\0")
        if _has_x_option(argv[1:], "disable_remote_debug"):
            raise NotAttachable(
                f"process {pid} opted out of remote debugging (-X disable_remote_debug)"
            )


def _has_x_option(args: list[str], name: str) -> bool:
    """Whether the interpreter options (before the script, -c or -m) hold -X name."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-", "--", "-c", "-m") or not arg.startswith("-"):
            return False
        if arg in ("-X", "-W", "--check-hash-based-pycs"):
            value = args[i + 1] if i + 1 < len(args) else ""
            if arg == "-X" and value.split("=", 1)[0] == name:
                return True
            i += 2
            continue
        if arg.startswith("-X") and arg[2:].split("=", 1)[0] == name:
            return True
        i += 1
    return False
