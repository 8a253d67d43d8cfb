"""What the kernel says about this process's threads (Linux).

CPU time comes from the kernel's per-thread CPU clock, addressed by TID
(clock id `((~tid) << 3) | 6`, as glibc builds it for pthread_getcpuclockid):
one system call, no file, and a thread that has exited gives EINVAL rather
than the dangling-pointer risk of going through a pthread handle. The
scheduler state letter needs /proc/self/task/<tid>/stat (an open, a read and
a close: about 17 us), so it is read only where it decides something.
"""

from __future__ import annotations

import os
import threading
import time


def native_id_of(thread: threading.Thread) -> int:
    """The kernel TID of `thread` (0 if unknown).

    After fork(), CPython (3.10 to 3.13 alike) keeps the parent's TID on the
    thread that forked, which is the child's main thread (a gunicorn worker's,
    say): there the real TID is the child's PID, the TID of a process's first
    thread. A main thread that legitimately is not the process's first thread
    (Python embedded and started on another thread) keeps its own, which the
    kernel knows.
    """
    native_id = thread.native_id or 0
    if (
        native_id
        and native_id != os.getpid()
        and thread is threading.main_thread()
        and not os.path.exists(f"/proc/self/task/{native_id}")
    ):
        return os.getpid()
    return native_id


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
    if not native_id:
        return ""
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: the state
    # follows the last ')'.
    after = raw[raw.rfind(b")") + 2 :]
    return after[:1].decode("ascii", "replace")
