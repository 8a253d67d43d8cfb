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
does not run protected code (PROTECTED: the standard library modules whose
Python code implements locks, conditions, queues, futures, import locks and
context managers, plus threadctl's own). The stop lands when the anchor is
the innermost frame, or, if the thread was running the anchor's own code at
the request (not waiting inside protected code), in an unprotected frame the
anchor called. A thread whose whole stack is protected (an idle pool worker
waiting for work) has no anchor: nothing to stop. A thread whose anchor
returned before the stop could land has moved on: the request is over.

Deciding and injecting must be one step that no other thread can interleave
with (the target, paused where we look, raises exactly there only if it has
not run meanwhile): the native helper (_native/landing.c) does both without
running bytecode. Without it (threadctl built without a C compiler) the same
check runs in Python, where the target can slip in between if this thread is
descheduled for a switch interval (a loaded machine); that is logged once.

The anchor is a strong reference to a frame of another thread: it keeps that
frame's locals alive until the stop lands or is over, so callers must drop it
then. Standard library only: this module also runs inside other processes.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.util
import logging
import os
import sys
import threading
from dataclasses import dataclass
from types import FrameType

from threadctl._stacks import frames_guarded, qualname

logger = logging.getLogger("threadctl")

_STDLIB = os.path.dirname(threading.__file__)
# Modules whose own Python code holds locks or bookkeeping an exception must
# not cut in half (files), and packages made of such modules (directories).
_PROTECTED_MODULES = ("threading", "queue", "contextlib", "weakref", "_weakrefset")
_PROTECTED_PACKAGES = ("logging", "concurrent/futures", "importlib", "multiprocessing")
_FROZEN = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")


def _files_of_packages(directories: list[str]) -> set[str]:
    files = set()
    for directory in directories:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        files.update(os.path.join(directory, name) for name in names if name.endswith(".py"))
    return files


PROTECTED: set[str] = {
    *(os.path.join(_STDLIB, f"{name}.py") for name in _PROTECTED_MODULES),
    *_files_of_packages([os.path.join(_STDLIB, package) for package in _PROTECTED_PACKAGES]),
    *_FROZEN,
}


_PACKAGE_NAMES: dict[str, str] = {}  # directory -> package, for waits_in labels


def protect_package(directory: str, name: str) -> None:
    """Never land in the Python files of `directory`, package `name` (threadctl's own)."""
    PROTECTED.update(_files_of_packages([directory]))
    _PACKAGE_NAMES[directory.rstrip(os.sep)] = name


class NoLandingPlace(Exception):
    """The thread runs only protected code (e.g. an idle pool worker waiting
    for its next task): there is nothing a forced stop may interrupt."""


@dataclass(frozen=True)
class Landing:
    """Where a requested forced stop may land (see the module docstring).

    `waits_in`: the protected function the thread was in at the request ("" if
    it ran the anchor's code), for the operator: a stop deferred there lands
    when the thread leaves it.
    """

    ident: int
    anchor: FrameType
    descendants_ok: bool
    waits_in: str

    @property
    def anchor_name(self) -> str:
        return _function_name(self.anchor)


class Landed(enum.Enum):
    SENT = "sent"  # queued: raised at the thread's next bytecode (or when its C call returns)
    NOT_NOW = "not_now"  # the thread is somewhere the stop must not land yet
    # Not now: the thread left the protected code it waited in and runs code
    # its anchor called since (the next task of a pool worker, perhaps).
    CALLED_ON = "called_on"
    GONE = "gone"  # the thread runs no Python code (it exited)


_LANDED = {1: Landed.SENT, 0: Landed.NOT_NOW, 2: Landed.CALLED_ON}


def observe(ident: int) -> Landing:
    """Choose where a stop of thread `ident` may land, from its stack now.

    Raises:
        NoLandingPlace: its whole stack is protected code.
        LookupError: the thread runs no Python code.
    """
    with frames_guarded():
        frame = sys._current_frames().get(ident)
        if frame is None:
            raise LookupError(f"thread {ident} runs no Python code")
        waits_in = ""
        while frame is not None and frame.f_code.co_filename in PROTECTED:
            waits_in = waits_in or _function_name(frame)
            frame = frame.f_back
        if frame is None:
            raise NoLandingPlace(
                f"it runs only standard-library code right now (in {waits_in}; an idle pool"
                " worker waiting for its next task?): a forced stop there would break the"
                " library's state or hit a task nobody asked to stop"
            )
        return Landing(ident, frame, not waits_in, waits_in)


def land(landing: Landing, exception: type[BaseException]) -> Landed:
    """Queue `exception` in the thread if it is where `landing` allows, now.

    Call holding threading's `_active_limbo_lock` after checking that the
    ident still names the thread the landing was observed for (see
    _force.force): it must not pass to a new thread meanwhile.
    """
    with frames_guarded():
        if _native is not None:
            result = _native.threadctl_land(
                landing.ident,
                exception,
                landing.anchor,
                int(landing.descendants_ok),
                PROTECTED,
            )
        else:
            result = _land_in_python(landing, exception)
    return _LANDED.get(result, Landed.GONE)


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


def _land_in_python(landing: Landing, exception: type[BaseException]) -> int:
    """The native helper's check, in Python (see the module docstring for its race)."""
    global _warned
    if not _warned:
        _warned = True
        logger.warning(
            "threadctl: the native landing helper is not built; forced stops check where they"
            " land in Python, which a heavily loaded machine can race (reinstall threadctl"
            " with a C compiler present)"
        )
    top = sys._current_frames().get(landing.ident)
    if top is None:
        return -1
    if top is not landing.anchor:
        if top.f_code.co_filename in PROTECTED:
            return 0
        walked = top.f_back
        while walked is not None and walked is not landing.anchor:
            walked = walked.f_back
        if walked is None:
            return 0
        if not landing.descendants_ok:
            return 2
    sent: int = _set_async_exc(landing.ident, exception)
    return 1 if sent == 1 else -1


def _function_name(frame: FrameType) -> str:
    """ "threading.Condition.wait", "logging.Handler.acquire", "threadctl._waits.get"."""
    code = frame.f_code
    directory, file = os.path.split(code.co_filename)
    module = os.path.splitext(file)[0]
    package = _PACKAGE_NAMES.get(directory)
    if package is None and directory.startswith(_STDLIB + os.sep):
        package = directory[len(_STDLIB) + 1 :].replace(os.sep, ".")
    if package:
        module = f"{package}.{module}" if module != "__init__" else package
    return f"{module}.{qualname(code)}"


def _load_native() -> ctypes.PyDLL | None:
    spec = importlib.util.find_spec("threadctl._landinglib")
    if spec is None or not spec.origin:
        return None
    try:
        library = ctypes.PyDLL(spec.origin)
    except OSError:
        return None
    if not library.threadctl_landing_available():
        return None
    library.threadctl_land.argtypes = [
        ctypes.c_ulong,
        ctypes.py_object,
        ctypes.py_object,
        ctypes.c_int,
        ctypes.py_object,
    ]
    library.threadctl_land.restype = ctypes.c_int
    return library


_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_native = _load_native()
_warned = False
