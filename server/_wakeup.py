"""The signal wakeup fd, taken over politely: a pipe that a thread reads.

CPython's C-level signal handler writes the signal number, one byte, to the
fd given to signal.set_wakeup_fd() (if any) before any Python handler runs,
and whatever the main thread is doing. Reading that fd from a thread of our
own is the one way to learn of a signal without the main thread's help.

There is one wakeup fd per process, and hosts use it (asyncio sets its own
for add_signal_handler). So ours chains: the fd that was set before keeps
getting every byte, written by our reader, non-blocking, dropped when that fd
is full (as the C handler drops it), and never once that fd is closed or its
number reused for another file; restore() sets it back. set_wakeup_fd() works
in the main thread only, and has no getter: restore() swaps and, if the host
set another fd after ours, puts that one back (a signal in between is
written to the previous fd).

Ours is set with warn_on_full_buffer=False, so a reader that fell behind
never prints into the host's stderr; the flag of the previous fd cannot be
read, so it is set back with the default (True, which asyncio uses).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator

logger = logging.getLogger("threadctl")

# Our bytes besides the C handler's signal numbers (all below 128 on the
# platforms Python supports): a marker for a signal number, and the end.
_MARK = 0x80
_CLOSE = 0


class WakeupPipe:
    """Our wakeup fd: a pipe whose read end one thread consumes with read()."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # set_wakeup_fd() insists; so do writers
        self._previous = _PreviousFd(-1)
        self.is_open = False

    def install(self) -> None:
        """Become the wakeup fd, in front of the current one (main thread)."""
        previous = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._previous = _PreviousFd(previous)
        self.is_open = True

    def mark(self, signum: int) -> bool:
        """Tell the reader that `signum` was handled (from a Python signal
        handler: no locks, no blocking). Whether the marker was written."""
        return self.is_open and _write(self._write_fd, bytes([_MARK | signum]))

    def restore(self) -> bool:
        """Set the previous wakeup fd back if ours is in place (main thread).

        Returns:
            True if it was, and the reader then ends and closes the pipe; False
            if the host set its own after ours: that one stays, and so does
            our pipe (the host may set it back one day).
        """
        current = _set_wakeup_fd(self._previous.live_fd())
        if current != self._write_fd:
            _set_wakeup_fd(current)
            return False
        self.is_open = False
        _write(self._write_fd, bytes([_CLOSE]))
        return True

    def forget_in_child(self) -> None:
        """After fork, in the child: its copy of the pipe leads to the
        parent's reader, so it must go, whether or not ours is in place."""
        if self.is_open:
            current = _set_wakeup_fd(self._previous.live_fd())
            if current != self._write_fd:
                _set_wakeup_fd(current)
        self.is_open = False
        os.close(self._read_fd)
        os.close(self._write_fd)

    def read(self) -> Iterator[tuple[int, bool]]:
        """Yield (signal number, marked) for every byte until restore(); the C
        handler's bytes go on to the previous wakeup fd. Reader thread only."""
        while True:
            data = os.read(self._read_fd, 512)
            woken = bytes(byte for byte in data if _CLOSE < byte < _MARK)
            if woken:
                self._previous.forward(woken)
            for byte in data:
                if byte == _CLOSE:
                    os.close(self._read_fd)
                    os.close(self._write_fd)
                    return
                yield byte & ~_MARK, bool(byte & _MARK)


class _PreviousFd:
    """The wakeup fd set before ours, while it is still the same open file."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._identity = _identity(fd) if fd >= 0 else None

    def live_fd(self) -> int:
        """The fd, or -1 once it is closed or another file."""
        if self._fd >= 0 and _identity(self._fd) != self._identity:
            logger.debug("threadctl: the previous wakeup fd %d was closed", self._fd)
            self._fd = -1
        return self._fd

    def forward(self, data: bytes) -> None:
        fd = self.live_fd()
        if fd >= 0 and not os.get_blocking(fd):  # a blocking write could stall our reader
            _write(fd, data)


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        status = os.fstat(fd)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _set_wakeup_fd(fd: int) -> int:
    """signal.set_wakeup_fd(fd), or of -1 where `fd` no longer qualifies
    (closed, or made blocking by its owner). Returns the fd it replaced."""
    try:
        return signal.set_wakeup_fd(fd)
    except (ValueError, OSError):
        return signal.set_wakeup_fd(-1)


def _write(fd: int, data: bytes) -> bool:
    """Write without blocking or raising: whether all of it was written."""
    try:
        return os.write(fd, data) == len(data)
    except OSError:
        return False
