"""The native library's helpers, loaded into this process: the landing check
(_core/native/landing.c) and the one-thread frame lookup
(_core/native/thread_frame.c).

Forced stops need a check-and-inject step that no other thread can
interleave with (see _core.landing). The helper does it in C; built like an
extension but never imported, it is loaded with ctypes.PyDLL (the GIL stays
held during the call). Without it (threadctl built with
THREADCTL_WITHOUT_NATIVE=1, see setup.py) the same check runs in Python,
with a small race under heavy load, and the first forced stop logs that once.
Without the frame lookup, one thread's frame comes from
sys._current_frames(), which builds every thread's.
"""

from __future__ import annotations

import ctypes
import logging
from types import CodeType, FrameType
from typing import TYPE_CHECKING

from threadctl import _native_library
from threadctl._core import landing

if TYPE_CHECKING:
    from threadctl._core.frames import FrameFinder

logger = logging.getLogger("threadctl")

_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_installed = False

_finder: FrameFinder | None = None
_finder_state = "unknown"  # "unknown" (not tried yet), "ready", "unavailable"


def install_injector() -> None:
    """Give _core.landing its injector: the native one if it was built (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    native = _load()
    if native is not None:
        landing.set_injector(native)
        return
    python = landing.python_injector(_set_async_exc)
    warned: list[bool] = []

    def inject(
        ident: int,
        exc: type[BaseException],
        task: frozenset[FrameType],
        ok: int,
        files: set[str],
        safe: dict[CodeType, set[int]],
    ) -> int:
        if not warned:
            warned.append(True)
            logger.warning(
                "threadctl: the native landing helper is not built; forced stops check where"
                " they land in Python, which a heavily loaded machine can race (reinstall"
                " threadctl without THREADCTL_WITHOUT_NATIVE=1, with a C compiler present)"
            )
        return python(ident, exc, task, ok, files, safe)

    landing.set_injector(inject)


def _load() -> landing.Injector | None:
    try:
        library = ctypes.PyDLL(str(_native_library.PATH))
    except OSError:
        return None
    if not library.threadctl_landing_available():
        return None
    land = library.threadctl_land
    land.argtypes = [
        ctypes.c_ulong,
        ctypes.py_object,
        ctypes.py_object,
        ctypes.c_int,
        ctypes.py_object,
        ctypes.py_object,
    ]
    land.restype = ctypes.c_int
    injector: landing.Injector = land  # a ctypes function with those argument types
    return injector


def thread_frame_finder() -> FrameFinder | None:
    """The native lookup of one thread's innermost frame by ident (None if
    that thread runs no Python code, or was not found), or None where it
    cannot be had: not built, or its ident offset did not check out against
    sys._current_frames() (see thread_frame.c). _core.frames.frame_of()
    uses it, and sys._current_frames() where it gives None: which of the two
    answers is never a question of correctness, only of cost.

    Call inside frames_guarded(): the offset's check needs the GC paused,
    and the guard's lock is what keeps two threads from loading at once (a
    lock of this module's own could be inherited held by a forked child,
    which the guard's is not). The check is made once, at the first call
    that sees at least two threads running Python code (with only the
    caller's own, too little would tell a wrong offset).
    """
    global _finder, _finder_state
    if _finder_state == "unknown":
        _finder, _finder_state = _load_finder()
    return _finder


def _load_finder() -> tuple[FrameFinder | None, str]:
    """The finder and the state it leaves: "ready", "unavailable", or still
    "unknown" (too few threads to check the offset yet)."""
    try:
        library = ctypes.PyDLL(str(_native_library.PATH))
        offset_of_ident = library.threadctl_thread_ident_offset
        offset_of_ident.argtypes = []
        offset_of_ident.restype = ctypes.c_long
        offset = offset_of_ident()  # raises what sys._current_frames() raised, if it did
    except (OSError, AttributeError, MemoryError):
        return None, "unavailable"
    if offset == -2:
        return None, "unknown"
    if offset < 0:
        logger.debug("threadctl: no thread ident offset checked out; using sys._current_frames()")
        return None, "unavailable"
    find = library.threadctl_thread_frame  # uses the offset the library keeps
    find.argtypes = [ctypes.c_ulong]
    find.restype = ctypes.py_object  # a new reference: ctypes takes it over
    finder: FrameFinder = find  # a ctypes function, not a Python one: the calling
    # thread's own innermost frame is then its caller's, as with sys._current_frames()
    return finder, "ready"
