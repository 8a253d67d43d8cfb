"""Opt-in: make SIGINT/SIGTERM really stop a threaded program.

Never installed unless install(stop_on_signals=...) or `python -m threadctl
--stop-on-signals` asks, and always chained to the handler that was there:

- first signal: start a cooperative stop of every thread (with the grace
  period) on a protected background thread, then pass the signal on to the
  previous handler if it is a Python callable (so the main thread still gets
  KeyboardInterrupt at once, unwinds, and the interpreter's shutdown waits for
  the stopping workers). A default action (SIG_DFL, e.g. SIGTERM's "terminate")
  is instead carried out after the stop has finished, so the process still
  ends by that signal, with the status it would have had. The handler never
  waits (the main thread may hold locks the stopping workers need); if the
  program finishes first, an atexit hook waits for the stop and then carries
  out the default action;
- a second signal while the grace period runs: force-stop the threads still
  alive, at once;
- after that: every signal goes straight to the previous handler.

Signals whose handler is SIG_IGN are left alone: the host chose to ignore them.
"""

from __future__ import annotations

import atexit
import logging
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
        self._lock = threading.Lock()
        self._stage = "armed"  # armed -> stopping -> done
        self._escalate = threading.Event()
        self._finished = threading.Event()
        self._deferred_default: int | None = None

    def install(self) -> None:
        """Chain in front of the current handlers (main thread only)."""
        for sig in self._signals:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                logger.info("threadctl: %s is ignored by this process; not handling it", sig.name)
                continue
            self._previous[sig] = current
            signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """Put the previous handlers back, where ours is still in place."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, previous)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:
            stage = self._stage
            if stage == "armed":
                self._stage = "stopping"
        if stage == "armed":
            worker = threading.Thread(
                target=self._stop_everything, args=(signum,), name="threadctl-stop-all", daemon=True
            )
            worker.start()
            registry.protect(worker)
            if self._previous.get(signum) is signal.SIG_DFL:
                self._deferred_default = signum
                atexit.register(self._default_action_at_exit)
            else:
                self._forward(signum, frame)
        elif stage == "stopping" and not self._escalate.is_set():
            self._escalate.set()
        else:
            self._forward(signum, frame)

    def _stop_everything(self, signum: int) -> None:
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
            with self._lock:
                self._stage = "done"
            self._finished.set()
        if self._deferred_default == signum:
            # Back in the main thread, _handle (stage "done") carries out the
            # default action; aimed at the main thread so its waits wake up.
            signal.pthread_kill(threading.main_thread().ident or 0, signum)

    def _default_action_at_exit(self) -> None:
        """The program ended before the stop did: finish the stop, then die by
        the signal as the default action would have made it."""
        signum = self._deferred_default
        if signum is None:
            return
        self._finished.wait(self._grace + 60)
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        if previous is signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        elif callable(previous):
            previous(signum, frame)
