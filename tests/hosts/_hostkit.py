"""Shared by the test hosts: print whole lines atomically from any thread."""

import sys
import threading

_lock = threading.Lock()


def say(line: str) -> None:
    """Write one line to stdout, flushed, never interleaved with another thread's."""
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
