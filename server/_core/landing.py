"""Where a forced stop may land, and landing it there.

PyThreadState_SetAsyncExc makes the target raise at its next eval-breaker
check, wherever that is. Two places are wrong:

- inside the standard library's own lock wrappers: an exception between
  `Condition.__enter__`'s acquire and the `with` block that would release it
  (or in `__exit__` before the release) leaves the lock held for good. Forced
  at random, a thread doing Queue.put/get left the queue's mutex held in 11 to
  31% of 200 stops on 3.10 to 3.13; logging's handler lock leaked the same way.
- in code the thread started after the stop was requested: a pool worker that
  was idle, or whose task finished meanwhile, would lose its *next* task.

So a stop lands only in code the operator saw: when it is requested, the
thread's stack is observed and its *anchor* chosen, the innermost frame that
does not run protected code (the standard library modules whose Python code
implements locks, conditions, queues, futures, import locks and context
managers, plus threadctl's own). The stop lands when the anchor is the
innermost frame, or, if the thread was running the anchor's own code at the
request (not waiting inside protected code), in an unprotected frame the
anchor called. A thread whose whole stack is protected (an idle pool worker
waiting for work) has no anchor: nothing to stop. A thread whose anchor
returned before the stop could land has moved on: the request is over.

Deciding and injecting must be one step that no other thread can interleave
with (the target, paused where we look, raises exactly there only if it has
not run meanwhile): the *injector* the caller installs does both. The native
one (native/landing.c, loaded by the host, or exposed by the attach agent
inside a target) runs no bytecode in between; the Python one (python_injector,
for builds without a C compiler) can be raced if this thread is descheduled
for a switch interval on a loaded machine.

The anchor is a strong reference to a frame of another thread: it keeps that
frame's locals alive until the stop lands or is over, so callers drop it then.
"""

from __future__ import annotations

import os
import sys

from .frames import frames_guarded, qualname

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from types import FrameType

    # (ident, exception class, anchor, descendants ok, protected files) -> result
    Injector = Callable[[int, type[BaseException], FrameType, int, set[str]], int]

# Outcomes of land()
SENT = "sent"  # queued: raised at the thread's next bytecode (or when its C call returns)
NOT_NOW = "not_now"  # the thread is somewhere the stop must not land yet
# Not now: the thread left the protected code it waited in and runs code its
# anchor called since (the next task of a pool worker, perhaps).
CALLED_ON = "called_on"
GONE = "gone"  # the thread runs no Python code (it exited)
_RESULTS = {1: SENT, 0: NOT_NOW, 2: CALLED_ON}

# Modules whose own Python code holds locks or bookkeeping an exception must
# not cut in half (files), and packages made of such modules (directories).
_PROTECTED_MODULES = ("threading", "queue", "contextlib", "weakref", "_weakrefset")
_PROTECTED_PACKAGES = ("logging", "concurrent/futures", "importlib", "multiprocessing")
_FROZEN = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")
_STDLIB = os.path.dirname(os.__file__)
_PACKAGE_NAMES: dict[str, str] = {}  # directory -> package name, for labels
_protected: set[str] = set()
_injector: Injector | None = None


def protected() -> set[str]:
    """The files a stop must never land in (computed on first use)."""
    if not _protected:
        _protected.update(os.path.join(_STDLIB, f"{name}.py") for name in _PROTECTED_MODULES)
        _protected.update(_FROZEN)
        for package in _PROTECTED_PACKAGES:
            _protected.update(_python_files(os.path.join(_STDLIB, package)))
    return _protected


def protect_package(directory: str, name: str) -> None:
    """Never land in the Python files of `directory`, package `name` (threadctl's own)."""
    protected().update(_python_files(directory))
    _PACKAGE_NAMES[directory.rstrip(os.sep)] = name


def set_injector(injector: Injector | None) -> None:
    """Install the check-and-inject step (see the module docstring); None
    removes it (a one-shot job's, when the job ends)."""
    global _injector
    _injector = injector


class NoLandingPlace(Exception):
    """The thread runs only protected code (e.g. an idle pool worker waiting
    for its next task): there is nothing a forced stop may interrupt."""


class Landing:
    """Where a requested forced stop may land (see the module docstring).

    `waits_in`: the protected function the thread was in at the request ("" if
    it ran the anchor's code), for the operator: a stop deferred there lands
    when the thread leaves it.
    """

    __slots__ = ("anchor", "descendants_ok", "ident", "waits_in")

    def __init__(self, ident: int, anchor: FrameType, descendants_ok: bool, waits_in: str) -> None:
        self.ident = ident
        self.anchor = anchor
        self.descendants_ok = descendants_ok
        self.waits_in = waits_in

    @property
    def anchor_name(self) -> str:
        return function_name(self.anchor)


def observe(ident: int) -> Landing:
    """Choose where a stop of thread `ident` may land, from its stack now.

    Raises:
        NoLandingPlace: its whole stack is protected code.
        LookupError: the thread runs no Python code.
    """
    files = protected()
    with frames_guarded():
        frame: FrameType | None = sys._current_frames().get(ident)
        if frame is None:
            raise LookupError(f"thread {ident} runs no Python code")
        waits_in = ""
        while frame is not None and frame.f_code.co_filename in files:
            waits_in = waits_in or function_name(frame)
            frame = frame.f_back
        if frame is None:
            raise NoLandingPlace(
                f"it runs only standard-library code right now (in {waits_in}; an idle pool"
                " worker waiting for its next task?): a forced stop there would break the"
                " library's state or hit a task nobody asked to stop"
            )
        return Landing(ident, frame, not waits_in, waits_in)


def send(thread: threading.Thread, landing: Landing, exception: type[BaseException]) -> str:
    """Queue `exception` (a class: an instance becomes SystemError in the
    target) in `thread` if it is where `landing` allows, now: SENT, NOT_NOW,
    CALLED_ON or GONE.

    Python reuses idents at once, so the ident must still belong to the same
    live thread object at the moment of injection: holding `threading`'s
    registry lock, the thread cannot finish exiting (and free its ident)
    between the check and the send.
    """
    threading_module = sys.modules["threading"]
    with threading_module._active_limbo_lock:
        if threading_module._active.get(thread.ident) is not thread or not thread.is_alive():
            return GONE
        if _injector is None:
            raise RuntimeError("no injector installed (landing.set_injector)")
        with frames_guarded():
            result = _injector(
                landing.ident, exception, landing.anchor, int(landing.descendants_ok), protected()
            )
    return _RESULTS.get(result, GONE)


def python_injector(set_async_exc: Callable[[int, type[BaseException]], int]) -> Injector:
    """The injector in Python, around `set_async_exc` (PyThreadState_SetAsyncExc)."""

    def inject(
        ident: int,
        exception: type[BaseException],
        anchor: FrameType,
        descendants_ok: int,
        files: set[str],
    ) -> int:
        top = sys._current_frames().get(ident)
        if top is None:
            return -1
        if top is not anchor:
            if top.f_code.co_filename in files:
                return 0
            walked = top.f_back
            while walked is not None and walked is not anchor:
                walked = walked.f_back
            if walked is None:
                return 0
            if not descendants_ok:
                return 2
        return 1 if set_async_exc(ident, exception) == 1 else -1

    return inject


def moved_on(landing: Landing) -> bool:
    """Whether the anchor has returned: the thread left the code the stop was
    meant for (frames never come back once they finished)."""
    with frames_guarded():
        frame = sys._current_frames().get(landing.ident)
        while frame is not None:
            if frame is landing.anchor:
                return False
            frame = frame.f_back
        return True


def handling(ident: int, exception_types: tuple[type[BaseException], ...]) -> bool:
    """Whether thread `ident` is handling one of `exception_types` now (in an
    `except`, `finally` or `__exit__` it triggered, directly or as the cause
    or context of what it is handling)."""
    with frames_guarded():
        current = sys._current_exceptions().get(ident)
    if isinstance(current, tuple):  # CPython 3.10 and 3.11: an exc_info triple
        current = current[1]
    seen = 0
    while current is not None and seen < 16:
        if isinstance(current, exception_types):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def function_name(frame: FrameType) -> str:
    """ "threading.Condition.wait", "logging.Handler.acquire", "threadctl._waits.get"."""
    code = frame.f_code
    directory, file = os.path.split(code.co_filename)
    module = file[:-3] if file.endswith(".py") else file
    package = _PACKAGE_NAMES.get(directory)
    if package is None and directory.startswith(_STDLIB + os.sep):
        package = directory[len(_STDLIB) + 1 :].replace(os.sep, ".")
    if package:
        module = f"{package}.{module}" if module != "__init__" else package
    return f"{module}.{qualname(code)}"


def _python_files(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, name) for name in names if name.endswith(".py")]
