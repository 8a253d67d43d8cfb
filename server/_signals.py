"""Opt-in: make SIGINT/SIGTERM really stop a threaded program.

Never installed unless install(stop_on_signals=...) or `python -m threadctl
--stop-on-signals` asks, and always chained to the handler that was there:

- first signal: a cooperative stop of every thread (with the grace period)
  runs on a protected thread started at install time, and the signal goes on
  to the previous handler: a Python handler (KeyboardInterrupt, by default)
  at once, unless the main thread is joining a thread; SIGTERM's default
  action (terminate) once the stop has finished, so the process exits with
  the status it would have had (-15). A KeyboardInterrupt inside
  Thread.join() can make CPython 3.11 forget that the joined thread still
  runs (and the process exits under it), so there the signal is passed on
  after the stop. If the program finishes first, an atexit hook waits for the
  stop and then ends the process the way the previous handler would have (by
  the signal, for the default handlers);
- a second signal while the grace period runs: force-stop the threads still
  alive, at once;
- after that: every signal goes straight to the previous handler.

Who notices the signal. A Python handler runs only when the main thread runs
bytecode. A main thread blocked in C code that retries on EINTR never does
(os.system() is C system() in a waitpid loop; many C libraries loop so): a
SIGTERM that SIG_DFL would have ended the process with was lost. So a
protected thread ("threadctl-signals") reads the wakeup fd (see _wakeup),
where CPython's C-level handler writes the signal number before any Python
handler runs, and starts the stop; the default action (SIG_DFL) is carried
out at the C level by the stopping thread ("threadctl-signals-stop"),
whatever the main thread is doing. Our Python handler only passes signals on
to a previous Python handler (that needs the main thread) and writes a
marker byte to the same pipe, which the reader counts only for signals whose
byte it did not get. It must not take locks or start threads: it runs
wherever the main thread was interrupted.

Limits, as built:
- a host that sets its own wakeup fd after install (asyncio's first
  add_signal_handler does) takes it over; threadctl does not fight for it,
  nor for a handler. The stop then starts from the marker, that is when the
  main thread runs bytecode (asyncio's does). The fd set before install
  keeps receiving every byte, and is set back on uninstall;
- uninstall() from a thread other than the main thread cannot restore
  handlers or wakeup fd (set_wakeup_fd() and signal.signal() work there
  only): ours stay, passing every signal straight on;
- a forked child has neither thread: an at-fork hook gives it the previous
  handlers and wakeup fd back and closes its copy of the pipe, which leads to
  the parent's reader (a signal in the microseconds before the hook still
  reaches the parent);
- a C call that holds the GIL stops every Python thread, ours too: not
  covered.

Signals whose handler is SIG_IGN are left alone: the host chose to ignore
them (note that a non-interactive shell starts background jobs with SIGINT
ignored, and exec keeps it so).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from threadctl import _os_names
from threadctl._control import validate
from threadctl._stop_all import stop_all
from threadctl._wakeup import WakeupPipe

logger = logging.getLogger("threadctl")

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers

_JOINING = ("join", "_wait_for_tstate_lock")


class SignalStopper:
    """The chained signal handler; one per installed server."""

    def __init__(self, signals: Iterable[int], *, grace: float, force_after_grace: bool) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("stop_on_signals needs install() to be called from the main thread")
        validate("", 0.0, grace, force=True)
        self._signals = [signal.Signals(s) for s in signals]
        self._grace = grace
        self._force_after_grace = force_after_grace
        self._previous: dict[int, Handler] = {}
        # The reader thread moves armed -> stopping, the stopping thread to
        # done; _signum is set with "stopping".
        self._stage = "armed"
        self._signum = 0
        self._triggered = threading.Event()
        self._escalate = threading.Event()
        self._finished = threading.Event()
        self._closed = False
        # Main thread only (the Python handler, the atexit hook).
        self._calls = 0
        self._forwarded = False
        self._exiting = False
        # Reader thread only: per signal, deliveries counted from C-level
        # bytes and markers seen from our handler.
        self._woken: dict[int, int] = {}
        self._marked: dict[int, int] = {}
        self._wakeups: WakeupPipe | None = None

    def install(self) -> None:
        """Chain in front of the current handlers and wakeup fd (main thread only)."""
        for sig in self._signals:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                logger.info("threadctl: %s is ignored by this process; not handling it", sig.name)
            elif current is None:
                # Set in C before Python started (an embedding program such
                # as uWSGI): it could be neither passed the signal nor put
                # back when we close (signal.signal(sig, None) raises).
                logger.info("threadctl: %s is handled outside Python; not handling it", sig.name)
            else:
                self._previous[sig] = current
        if not self._previous:
            return
        _libc_signal()
        self._woken = dict.fromkeys(self._previous, 0)
        self._marked = dict.fromkeys(self._previous, 0)
        self._wakeups = WakeupPipe()
        for target, name in ((self._read_wakeups, "threadctl-signals"),
                             (self._stop_when_triggered, "threadctl-signals-stop")):  # fmt: skip
            _os_names.start_own(threading.Thread(target=target, name=name, daemon=True))
        self._wakeups.install()
        for signum in self._previous:
            signal.signal(signum, self._handle)
        atexit.register(self._default_action_at_exit)
        _installed.add(self)

    def uninstall(self) -> None:
        """Put the previous handlers and wakeup fd back, where ours are still
        in place (main thread only; elsewhere ours stay and pass signals on)."""
        self._closed = True
        self._triggered.set()  # lets the stopping thread end, if it never ran
        atexit.unregister(self._default_action_at_exit)
        wakeups = self._wakeups
        if wakeups is not None and threading.current_thread() is threading.main_thread():
            self._restore_previous()
            if wakeups.is_open and wakeups.restore():
                _installed.discard(self)  # only now may a forked child use the pipe

    def _restore_previous(self) -> None:
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, previous)

    def _forget_in_child(self) -> None:
        """After fork, in the child (its only thread): no reader or stopping
        thread came along, so nothing of ours may stay in the way."""
        self._closed = True
        atexit.unregister(self._default_action_at_exit)
        self._restore_previous()
        if self._wakeups is not None:
            self._wakeups.forget_in_child()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        told = self._wakeups is not None and self._wakeups.mark(signum)
        previous = self._previous.get(signum, signal.SIG_DFL)
        if not callable(previous):
            if previous is signal.SIG_DFL and not told:
                _default_action(signum)  # nobody else would
            return  # the reader thread and the stopping thread carry it out
        self._calls += 1
        if self._closed or (self._calls == 1 and not _inside(frame, _JOINING)):
            self._forward(signum, frame)
        elif self._calls == 1 or (self._calls == 2 and self._stage != "done"):
            pass  # first while joining (passed on after the stop); second: the reader escalates
        elif not self._forwarded and (self._exiting or _inside(frame, ("_shutdown",))):
            pass  # the interpreter is exiting: the atexit hook finishes the job
        else:
            self._forward(signum, frame)

    def _read_wakeups(self) -> None:
        assert self._wakeups is not None
        for signum, marked in self._wakeups.read():
            if signum not in self._woken:
                continue  # another signal with a Python handler: not ours
            if marked:
                # Our handler ran: a delivery unless its byte was counted.
                self._marked[signum] += 1
                if self._marked[signum] <= self._woken[signum]:
                    continue
                self._woken[signum] = self._marked[signum]
            elif signal.getsignal(signum) == self._handle:
                self._woken[signum] += 1
            else:
                continue  # a handler set after ours took the signal over
            self._delivered(signum)

    def _delivered(self, signum: int) -> None:
        """One of our signals reached the process (reader thread)."""
        if not self._closed and self._stage == "armed":
            self._signum, self._stage = signum, "stopping"
            self._triggered.set()
        elif not self._closed and self._stage == "stopping" and not self._escalate.is_set():
            self._escalate.set()
        elif self._previous[signum] is signal.SIG_DFL:
            _default_action(signum)  # straight on; a Python handler is called by _handle

    def _stop_when_triggered(self) -> None:
        self._triggered.wait()
        if self._closed:
            return
        signum = self._signum
        name = signal.Signals(signum).name
        try:
            stop_all(
                grace=self._grace,
                force=self._force_after_grace,
                reason=f"{name} received",
                caller=f"signal {name}",
                escalate=self._escalate,
            )
        finally:
            self._stage = "done"
            self._finished.set()
        previous = self._previous[signum]
        if previous is signal.SIG_DFL:
            _default_action(signum)
        elif callable(previous) and not self._forwarded:
            # Back in the main thread, _handle (stage "done") passes the signal
            # on; aimed at the main thread so that its waits wake up.
            signal.pthread_kill(threading.main_thread().ident or 0, signum)

    def _default_action_at_exit(self) -> None:
        """The program ended before the signal was passed on: finish the stop,
        then end the way the previous handler would have made it."""
        signum = self._signum
        if not signum or self._forwarded:
            return
        self._exiting = True
        self._finished.wait(self._grace + 60)
        previous = self._previous.get(signum, signal.SIG_DFL)
        if previous in (signal.SIG_DFL, signal.default_int_handler):
            # An uncaught KeyboardInterrupt, too, ends the process by SIGINT.
            _default_action(signum)
        elif callable(previous):
            self._forward(signum, None)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        """Pass the signal on to the previous Python handler (main thread)."""
        self._forwarded = True
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)


def _inside(frame: FrameType | None, functions: tuple[str, ...]) -> bool:
    """Whether the main thread was interrupted inside one of `threading`'s
    `functions` (the frames the signal handler was given)."""
    while frame is not None:
        code = frame.f_code
        if code.co_name in functions and code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def _default_action(signum: int) -> None:
    """End the process by `signum`'s default action, from any thread: reset
    the disposition in libc (Python's signal.signal only works in the main
    thread) and send the signal to the process."""
    _libc_signal()(signum, None)  # SIG_DFL
    os.kill(os.getpid(), signum)


@functools.cache
def _libc_signal() -> Any:
    """libc's signal(); looked up at install, not in the middle of a stop."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
    return libc.signal


_installed: weakref.WeakSet[SignalStopper] = weakref.WeakSet()


def _forget_in_child() -> None:
    for stopper in list(_installed):
        stopper._forget_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
