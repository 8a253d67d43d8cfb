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
managers, plus threadctl's own). The stop may land:

- in the anchor, when it is the innermost frame;
- in an unprotected frame the anchor called, unless the thread was blocked
  waiting in protected code at the request (WAITS): what it calls after the
  wait may be its next task;
- in protected code the anchor called, if every protected frame is at a
  place written for an exception raised there (SAFE_REGIONS: inside the try
  or with blocks of `Condition.wait`, whose finally restores the lock, and
  of the Event, Queue, Semaphore, Barrier, Future and join waits built on
  it). So a thread blocked in such a wait gets the stop when the wait
  returns, and a consumer blocked in Queue.get loses no item (the stop is
  raised before the item is taken).

Never in a `__del__` method or anything it calls: Python swallows an
exception raised there ("Exception ignored in") and the thread runs on.

A thread whose whole stack is protected, or that waits for work in a pool's
loop (IDLE_LOOPS), is an idle pool worker: there is nothing to stop, and a
stop would hit its next task. A thread whose anchor returned before the stop
could land has moved on: the request is over.

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

from .frames import frame_of, frames_guarded, qualname
from .source import block_lines

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from types import CodeType, FrameType

    # (ident, exception class, the task's frames, descendants ok, protected
    #  files, safe lines by code) -> result
    Injector = Callable[
        [int, type[BaseException], frozenset[FrameType], int, set[str], dict[CodeType, set[int]]],
        int,
    ]

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
# Protected code written for an exception raised in it: (module, function)
# -> "blocks" (inside its try and with blocks, whose finally or __exit__
# restores the state), "all" (it keeps no state of its own), or "call:TEXT"
# (the lines calling TEXT: concurrent.futures.wait only leaves its waiter
# registered in the futures, garbage until they go, if its wait is cut short).
SAFE_REGIONS = {
    ("threading", "Condition.wait"): "blocks",
    ("threading", "Event.wait"): "blocks",
    ("threading", "Semaphore.acquire"): "blocks",
    ("threading", "Barrier.wait"): "blocks",
    ("threading", "Thread.join"): "all",
    ("threading", "Thread._wait_for_tstate_lock"): "blocks",
    ("queue", "Queue.get"): "blocks",
    ("queue", "Queue.put"): "blocks",
    ("concurrent.futures._base", "Future.result"): "blocks",
    ("concurrent.futures._base", "Future.exception"): "blocks",
    ("concurrent.futures._base", "wait"): "call:waiter.event.wait(",
    ("concurrent.futures._base", "as_completed"): "blocks",
}
# Where a thread blocks waiting (as opposed to passing through protected
# code): a stop requested while it waits there must not land in what it
# calls after the wait (its next task).
WAITS = (
    ("threading", "Condition.wait"),
    ("threading", "Thread._wait_for_tstate_lock"),
    ("threading", "Thread.join"),
    ("concurrent.futures.thread", "_worker"),
)
# The loops where pool threads wait for their next task: a thread waiting in
# protected code called from one of these is idle.
IDLE_LOOPS = (
    ("waitress.task", "ThreadedTaskDispatcher.handler_thread"),
    ("cheroot.workers.threadpool", "WorkerThread.run"),
)
# CPython 3.13 and later raise a queued exception at a thread's next
# eval-breaker check after the one it is paused in (see safe_lines).
QUEUE_UNSAFE = sys.version_info >= (3, 13)
_STDLIB = os.path.dirname(os.__file__)
_PACKAGE_NAMES: dict[str, str] = {}  # directory -> package name, for labels
_protected: set[str] = set()
_safe_lines: dict[CodeType, set[int]] = {}
_injector: Injector | None = None


def protected() -> set[str]:
    """The files a stop must never land in (computed on first use), and the
    names of functions it must never land in either: `__del__`, where Python
    swallows the exception (the landing check looks up both)."""
    if not _protected:
        _protected.add("__del__")
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

    `task`: the frames of the code the stop is meant for, observed at the
    request: the anchor and its callers up to library code or a pool's loop
    (a list comprehension or helper the anchor was in may return; the stop
    then lands in its caller). `waits_in`: the protected function the thread
    was in at the request ("" if it ran its own code), for the operator.
    """

    __slots__ = ("anchor", "descendants_ok", "ident", "task", "waits_in")

    def __init__(
        self,
        ident: int,
        task: list[FrameType],
        descendants_ok: bool,
        waits_in: str,
    ) -> None:
        self.ident = ident
        self.anchor = task[0]
        self.task = frozenset(task)
        self.descendants_ok = descendants_ok
        self.waits_in = waits_in

    @property
    def anchor_name(self) -> str:
        return function_name(self.anchor)


def observe(ident: int) -> Landing:
    """Choose where a stop of thread `ident` may land, from its stack now.

    Raises:
        NoLandingPlace: its whole stack is protected code, or it waits for
            work in a pool's loop.
        LookupError: the thread runs no Python code.
    """
    files = protected()
    with frames_guarded():
        top: FrameType | None = frame_of(ident)
        if top is None:
            raise LookupError(f"thread {ident} runs no Python code")
        stack = []  # outermost first
        walked: FrameType | None = top
        while walked is not None:
            stack.append(walked)
            walked = walked.f_back
        stack.reverse()
        # Library code: protected frames, and standard-library frames they
        # call (posixpath under logging). The task: the frames outside it
        # above the innermost library code, up to library code or a pool's
        # loop (a user's callback that library code calls is outside).
        # A `__del__` method and all it calls count as library code: Python
        # swallows an exception raised there ("Exception ignored in"), and
        # the thread runs on; nor may the stop land in one the task calls.
        idle_loops = _codes(IDLE_LOOPS)
        task: list[FrameType] = []
        inside, waits_in, idle_in, in_del = False, "", "", False
        for frame in stack:
            name = frame.f_code.co_filename
            in_del = in_del or frame.f_code.co_name == "__del__"
            inside = in_del or name in files or (inside and _is_stdlib(name))
            if inside:
                waits_in = waits_in or function_name(frame)
                continue
            if waits_in or frame.f_code in idle_loops:
                task, waits_in = [], ""  # a new task begins above library code
            if frame.f_code in idle_loops:
                idle_in = function_name(frame)  # a pool's loop is no task's part
            else:
                task.insert(0, frame)
        del stack, walked
        if not task and idle_in:
            raise NoLandingPlace(
                f"it is an idle pool worker ({idle_in} waits for its next task in"
                f" {function_name(top)}): a forced stop would end the worker or its next task,"
                " which nobody asked to stop"
            )
        if not task:
            raise NoLandingPlace(
                f"it runs only standard-library code right now (in {function_name(top)}; an"
                " idle pool worker waiting for its next task?): a forced stop there would break the"
                " library's state or hit a task nobody asked to stop"
            )
        waiting = bool(waits_in) and top.f_code in _codes(WAITS)
        return Landing(ident, task, not waiting and not in_del, waits_in)


def safe_lines() -> dict[CodeType, set[int]]:
    """SAFE_REGIONS as {code object: its safe lines}, from the modules'
    sources (read once; a module not imported yet is looked at again next
    time).

    None on CPython 3.13 and later. There a thread that gives up the GIL at
    an eval-breaker check has read its pending-work bits before, so an
    exception queued meanwhile is raised at its *next* check, not at the one
    it is paused in: from inside Condition.wait that next check can be the
    entry of `_acquire_restore` in its finally (measured: 74 of 74 stops
    queued while Condition.wait was at its `_waiters.remove` call left the
    lock released and then released again), and from the thread's own code
    the entry of the `Condition.__exit__` its `with` block calls next (about
    1 stop in 10 of a `with cond: ... cond.wait(...)` loop left the lock
    held). So nothing is queued there at all (QUEUE_UNSAFE): the thread
    raises the stop itself, at a line of its task (traps.py).
    """
    if QUEUE_UNSAFE:
        return _safe_lines
    for (module_name, function), where in SAFE_REGIONS.items():
        code = _code_of(module_name, function)
        if code is not None and code not in _safe_lines:
            _safe_lines[code] = block_lines(code, where)
    return _safe_lines


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
        if QUEUE_UNSAFE:
            return NOT_NOW
        if _injector is None:
            raise RuntimeError("no injector installed (landing.set_injector)")
        safe = safe_lines()
        with frames_guarded():
            result = _injector(
                landing.ident,
                exception,
                landing.task,
                int(landing.descendants_ok),
                protected(),
                safe,
            )
    return _RESULTS.get(result, GONE)


def python_injector(set_async_exc: Callable[[int, type[BaseException]], int]) -> Injector:
    """The injector in Python, around `set_async_exc` (PyThreadState_SetAsyncExc)."""

    def inject(
        ident: int,
        exception: type[BaseException],
        task: frozenset[FrameType],
        descendants_ok: int,
        files: set[str],
        safe: dict[CodeType, set[int]],
    ) -> int:
        top = frame_of(ident)
        if top is None:
            return -1
        any_protected, all_safe = False, True
        walked: FrameType | None = top
        while walked is not None and walked not in task:
            if walked.f_code.co_filename in files or walked.f_code.co_name in files:
                any_protected = True
                all_safe = all_safe and walked.f_lineno in safe.get(walked.f_code, ())
            walked = walked.f_back
        if walked is None:
            return 0
        if walked is not top:
            if not any_protected and not descendants_ok:
                return 2
            if any_protected and not all_safe:
                return 0
        return 1 if set_async_exc(ident, exception) == 1 else -1

    return inject


def moved_on(landing: Landing) -> bool:
    """Whether the anchor has returned: the thread left the code the stop was
    meant for (frames never come back once they finished)."""
    return position(landing) is None


def position(landing: Landing) -> tuple[int, int] | None:
    """Where the thread is now (its innermost frame and offset, to tell a
    thread that moves from one that is blocked), or None if it moved on: no
    frame of the task runs any more."""
    with frames_guarded():
        top = frame_of(landing.ident)
        frame = top
        while frame is not None and frame not in landing.task:
            frame = frame.f_back
        found = None if frame is None or top is None else (id(top), top.f_lasti)
        del top, frame
        return found


def handling(ident: int, exception_types: tuple[type[BaseException], ...]) -> bool:
    """Whether thread `ident` is handling one of `exception_types` now (in an
    `except`, `finally` or `__exit__` it triggered, directly or as the cause
    or context of what it is handling)."""
    with frames_guarded():
        raised: object = sys._current_exceptions().get(ident)
    if isinstance(raised, tuple):  # CPython 3.10 and 3.11: an exc_info triple
        raised = raised[1]
    current = raised if isinstance(raised, BaseException) else None
    seen = 0
    while current is not None and seen < 16:
        if isinstance(current, exception_types):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def caught(ident: int, exception_types: tuple[type[BaseException], ...]) -> bool:
    """Whether thread `ident`, which was raised one of `exception_types`,
    caught it and goes on: it handles none of them now, and runs more than
    `threading`'s own code (after the excepthook, a thread that dies of the
    exception still runs threading's bootstrap for a moment: it is exiting,
    not going on)."""
    if handling(ident, exception_types):
        return False
    threading_file = sys.modules["threading"].__file__
    with frames_guarded():
        frame = frame_of(ident)
        while frame is not None and frame.f_code.co_filename == threading_file:
            frame = frame.f_back
        return frame is not None


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


def _is_stdlib(filename: str) -> bool:
    if filename.startswith("<frozen "):
        return True
    return filename.startswith(_STDLIB + os.sep) and "-packages" not in filename


def _codes(functions: tuple[tuple[str, str], ...]) -> set[CodeType | None]:
    return {_code_of(module, function) for module, function in functions}


def _code_of(module_name: str, qualified: str) -> CodeType | None:
    """The code object of function `qualified` of an imported module."""
    target: object = sys.modules.get(module_name)
    for attribute in qualified.split("."):
        target = getattr(target, attribute, None)
    return getattr(target, "__code__", None)


def _python_files(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, name) for name in names if name.endswith(".py")]
