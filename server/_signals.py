"""Opt-in: make SIGINT/SIGTERM really stop a threaded program.

Never installed unless install(stop_on_signals=...) or `python -m threadctl
--stop-on-signals` asks, and always chained to the handler that was there:

- first signal: a cooperative stop of every thread (with the grace period)
  runs on a protected thread started at install time, and the signal goes on
  to the previous handler: a Python handler (KeyboardInterrupt, by default)
  at once, unless the main thread is joining a thread, SIGTERM's default
  action (terminate) only once the stop has finished, so the process exits
  with the status it would have had. A KeyboardInterrupt inside Thread.join()
  can make CPython 3.11 forget that the joined thread still runs (and the
  process exits under it), so there too the signal is passed on after the
  stop. If the program finishes first, an atexit hook waits for the stop and
  then ends the process the way the previous handler would have (by the
  signal, for the default handlers);
- a second signal while the grace period runs: force-stop the threads still
  alive, at once;
- after that: every signal goes straight to the previous handler.

The handler itself only flips flags and sets an Event: it runs wherever the
main thread was interrupted, perhaps holding `threading`'s or threadctl's
locks, so it must not start threads or take those locks. Signals whose
handler is SIG_IGN are left alone: the host chose to ignore them.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import threading
from collections.abc import Iterable
from types import FrameType

from threadctl._control import validate
from threadctl._registry import registry
from threadctl._stop_all import stop_all

logger = logging.getLogger("threadctl")

Handler = signal.Handlers | int | object


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
        # Only the main thread changes these (in _handle), except "done",
        # which the stopping thread sets once it is finished.
        self._stage = "armed"  # armed -> stopping -> done
        self._signum = 0
        self._forwarded = False
        self._exiting = False
        self._triggered = threading.Event()
        self._escalate = threading.Event()
        self._finished = threading.Event()
        self._closed = False

    def install(self) -> None:
        """Chain in front of the current handlers (main thread only)."""
        for sig in self._signals:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                logger.info("threadctl: %s is ignored by this process; not handling it", sig.name)
                continue
            self._previous[sig] = current
            signal.signal(sig, self._handle)
        worker = threading.Thread(
            target=self._stop_when_triggered, name="threadctl-signals", daemon=True
        )
        worker.start()
        registry.protect(worker)
        atexit.register(self._default_action_at_exit)

    def uninstall(self) -> None:
        """Put the previous handlers back, where ours is still in place."""
        self._closed = True
        self._triggered.set()  # lets the stopping thread end, if it never ran
        atexit.unregister(self._default_action_at_exit)
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, previous)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._stage == "armed":
            self._stage = "stopping"
            self._signum = signum
            self._triggered.set()
            previous = self._previous.get(signum)
            if callable(previous) and not _inside(frame, ("join", "_wait_for_tstate_lock")):
                self._forward(signum, frame)
            # else: passed on once the stop has finished (see _stop_when_triggered)
        elif self._stage == "stopping" and not self._escalate.is_set():
            self._escalate.set()
        elif not self._forwarded and (self._exiting or _inside(frame, ("_shutdown",))):
            pass  # the interpreter is exiting: the atexit hook finishes the job
        else:
            self._forward(signum, frame)

    def _stop_when_triggered(self) -> None:
        self._triggered.wait()
        if self._closed:
            return
        name = signal.Signals(self._signum).name
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
        if not self._forwarded:
            # Back in the main thread, _handle (stage "done") passes the signal
            # on; aimed at the main thread so that its waits wake up.
            signal.pthread_kill(threading.main_thread().ident or 0, self._signum)
            if self._previous.get(self._signum) is signal.SIG_DFL:
                # Should the main thread not get to it (seen rarely in CI, not
                # understood), carry out the default action at the C level.
                self._escalate.wait(_DEFAULT_ACTION_FALLBACK)
                _default_action(self._signum)

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
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        elif callable(previous):
            self._forward(signum, None)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self._forwarded = True
        previous = self._previous.get(signum, signal.SIG_DFL)
        if previous is signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        elif callable(previous):
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


# Seconds the main thread gets to carry out a default action itself.
_DEFAULT_ACTION_FALLBACK = 2.0


def _default_action(signum: int) -> None:
    """End the process by `signum`'s default action, from any thread: reset
    the disposition in libc (Python's signal.signal only works in the main
    thread) and send the signal to the process."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.restype = ctypes.c_void_p
    libc.signal(signum, ctypes.c_void_p(0))  # SIG_DFL
    os.kill(os.getpid(), signum)
