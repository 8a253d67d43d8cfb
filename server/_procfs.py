"""What the kernel says about this process's threads (Linux /proc).

Read from /proc/self/task/<tid>/stat rather than through
pthread_getcpuclockid(): a pthread handle of a thread that just exited is a
dangling pointer, while a missing /proc entry is just a missing file.
"""

from __future__ import annotations

import os
from typing import NamedTuple

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ThreadStat(NamedTuple):
    """CPU seconds (user + system) and scheduler state letter of one thread."""

    cpu_seconds: float | None
    state: str  # "R", "S", "D", ... or "" when unknown


UNKNOWN = ThreadStat(None, "")


def thread_stat(native_id: int | None) -> ThreadStat:
    """The kernel's record of thread `native_id` of this process (UNKNOWN if gone)."""
    if not native_id:
        return UNKNOWN
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return UNKNOWN
    # The command name (field 2) may hold spaces and parentheses: split after
    # the last ')'. Then state is field 3, utime and stime fields 14 and 15.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        return ThreadStat(cpu, fields[0].decode("ascii", "replace"))
    except (IndexError, ValueError):
        return UNKNOWN
