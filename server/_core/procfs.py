"""What the kernel says about processes and threads (Linux /proc).

CPU time comes from the kernel's per-thread CPU clock, addressed by TID
(clock id `((~tid) << 3) | 6`, as glibc builds it for pthread_getcpuclockid):
one system call, no file, and a thread that has exited gives EINVAL rather
than the dangling-pointer risk of going through a pthread handle. The
scheduler state letter needs /proc/.../stat (an open, a read and a close:
about 17 us), so it is read only where it decides something. One parser for
every stat file threadctl reads (its own threads, a target's, a target's
threads from inside it), and one for status files.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading


class Stat:
    """Fields of a /proc stat line: state letter, CPU seconds (user +
    system), start time in clock ticks (tells a process or thread from a
    later one that got the same id)."""

    __slots__ = ("cpu_seconds", "start_ticks", "state")

    def __init__(self, state: str, cpu_seconds: float, start_ticks: int) -> None:
        self.state = state
        self.cpu_seconds = cpu_seconds
        self.start_ticks = start_ticks


def read_stat(path: str) -> Stat | None:
    """The stat file at `path` (e.g. /proc/PID/stat), None if unreadable."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        # The command name (field 2) may hold spaces and parentheses: the
        # fields from the state on follow the last ')'.
        fields = raw[raw.rfind(b")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return Stat(
            fields[0].decode("ascii", "replace"),
            (int(fields[11]) + int(fields[12])) / ticks,
            int(fields[19]),
        )
    except (OSError, IndexError, ValueError):
        return None


def read_status(pid: int) -> dict[str, str] | None:
    """/proc/PID/status as {field: value, stripped}; None if there is no such
    process (or it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    return {key: value.strip() for key, _, value in (line.partition(":\t") for line in lines)}


def root_prefix(pid: int) -> str:
    """How this process reaches the files of process `pid` as that process
    sees them: directly (""), or through /proc/PID/root when it lives in
    another mount namespace (a container: its /tmp is not ours) or has
    another root directory."""
    root = f"/proc/{pid}/root"
    try:
        same_view = os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
        return "" if same_view and os.path.samestat(os.stat(root), os.stat("/")) else root
    except OSError:
        return ""


def native_id_of(thread: threading.Thread) -> int:
    """The kernel TID of `thread` (0 if unknown).

    After fork(), CPython (3.10 to 3.13 alike) keeps the parent's TID on the
    thread that forked, which is the child's main thread (a gunicorn worker's,
    say): there the real TID is the child's PID, the TID of a process's first
    thread. A main thread that legitimately is not the process's first thread
    (Python embedded and started on another thread) keeps its own, which the
    kernel knows.
    """
    native_id: int = thread.native_id or 0
    threading = sys.modules.get("threading")
    if (
        native_id
        and threading is not None
        and thread is threading.main_thread()
        and native_id != os.getpid()
        and not os.path.exists(f"/proc/self/task/{native_id}")
    ):
        return os.getpid()
    return native_id


def is_alive(thread: threading.Thread) -> bool:
    """Whether `thread` still runs, also for threads started outside `threading`.

    Those appear as dummy thread objects whose is_alive() is always True and
    which `threading` may keep after the thread ended, so ask the kernel.
    """
    threading = sys.modules["threading"]  # it made `thread`
    if isinstance(thread, threading._DummyThread):
        return os.path.exists(f"/proc/self/task/{native_id_of(thread)}")
    return thread.is_alive()


def thread_cpu_seconds(native_id: int | None) -> float | None:
    """User + system CPU seconds of thread `native_id` of this process, None if gone."""
    if not native_id:
        return None
    try:
        return time.clock_gettime(((~native_id) << 3) | 6)
    except OSError:
        return None


def thread_state(native_id: int | None) -> str:
    """The kernel's scheduler state letter of a thread ("R", "S", "D", ...), "" if unknown."""
    stat = read_stat(f"/proc/self/task/{native_id}/stat") if native_id else None
    return stat.state if stat is not None else ""
