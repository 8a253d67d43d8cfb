"""What the kernel says about this process's threads (Linux).

CPU time comes from the kernel's per-thread CPU clock, addressed by TID
(clock id `((~tid) << 3) | 6`, as glibc builds it for pthread_getcpuclockid):
one system call, no file, and a thread that has exited gives EINVAL rather
than the dangling-pointer risk of going through a pthread handle. The
scheduler state letter needs /proc/self/task/<tid>/stat (an open, a read and
a close: about 17 us), so it is read only where it decides something.
"""

from __future__ import annotations

import time


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
