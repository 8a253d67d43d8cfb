"""Kernel thread names: what `top -H` and `ps -L` show.

Operators start from `top -H`, which shows each thread's kernel name (15
bytes, `/proc/PID/task/TID/comm`), and CPython before 3.14 leaves every
thread it starts with the process's name. So:

- threadctl's own threads get their names at OS level as they start
  (start_own: threadctl-rpc-1, threadctl-force, ...), always;
- `install(name_os_threads=True)` (launcher `--name-os-threads`) names every
  other Python thread too: those running at install, and each new one as it
  starts, from a wrapper around `Thread._set_native_id` (the step of
  `Thread._bootstrap_inner` where the thread's TID becomes known).

A thread's name is written to /proc/self/task/TID/comm, which Linux lets any
thread of the process do (no ctypes). Names are cut to 15 bytes, as the
kernel requires. The main thread is never renamed: its name is the process's
name in `ps` and `top`; nor are threads that C libraries started. Hazards:
a name given after the thread started (`thread.name = ...`) is not
followed; CPython 3.14 and later name threads themselves, and then this
changes nothing they did not.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from threadctl._registry import registry

_MAX_BYTES = 15
_original_set_native_id: Callable[[threading.Thread], None] | None = None


def set_os_name(thread: threading.Thread) -> None:
    """Give `thread` (started, not the main thread) its name at OS level.
    Threads not started by `threading` (Dummy-N: threads of C libraries,
    such as gRPC's, that ran Python) keep the names their library gave."""
    if (
        thread.native_id is None
        or thread is threading.main_thread()
        or isinstance(thread, threading._DummyThread)
    ):
        return
    # Cut at a character boundary: the kernel keeps 15 bytes.
    name = thread.name.encode()[:_MAX_BYTES].decode(errors="ignore").encode()
    path = f"/proc/self/task/{thread.native_id}/comm"
    with contextlib.suppress(OSError), open(path, "wb") as comm:  # OSError: it ended
        comm.write(name)


def start_own(thread: threading.Thread) -> None:
    """Start one of threadctl's own threads: protected before it runs (no
    listing ever shows it unprotected), named at OS level once it runs.

    Raises:
        RuntimeError: from Thread.start (the interpreter is shutting down).
    """
    registry.protect(thread)
    thread.start()
    set_os_name(thread)


def name_all_threads() -> None:
    """Name every Python thread at OS level: those running now and, from now
    on, each one as it starts."""
    global _original_set_native_id
    for thread in threading.enumerate():
        set_os_name(thread)
    if _original_set_native_id is not None or not hasattr(threading.Thread, "_set_native_id"):
        return
    original = _original_set_native_id = threading.Thread._set_native_id

    def _set_native_id(self: threading.Thread) -> None:
        original(self)
        # Never an exception here: start() waits for this thread's _started,
        # which is set after this step.
        with contextlib.suppress(Exception):
            set_os_name(self)

    threading.Thread._set_native_id = _set_native_id


def stop_naming_new_threads() -> None:
    """Undo name_all_threads' wrapper (names already given stay)."""
    global _original_set_native_id
    if _original_set_native_id is not None:
        # A private method (mypy knows it only after name_all_threads' hasattr).
        threading.Thread._set_native_id = _original_set_native_id  # type: ignore[attr-defined]
        _original_set_native_id = None
