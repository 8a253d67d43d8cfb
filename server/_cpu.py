"""Per-thread CPU time from the kernel.

Read from /proc/self/task/<tid>/stat rather than through
pthread_getcpuclockid(): a pthread handle of a thread that just exited is a
dangling pointer, while a missing /proc entry is just a missing file.
"""

from __future__ import annotations

import os

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def thread_cpu_seconds(native_id: int | None) -> float | None:
    """User + system CPU seconds of thread `native_id` of this process.

    Returns None if the thread is gone or the kernel's record is unreadable.
    """
    if not native_id:
        return None
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after
    # the last ')'. Then utime and stime are fields 14 and 15 of the line.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (IndexError, ValueError):
        return None
