"""The native landing helper (_core/native/landing.c), loaded into this process.

Forced stops need a check-and-inject step that no other thread can
interleave with (see _core.landing). The helper does it in C; built like an
extension but never imported, it is loaded with ctypes.PyDLL (the GIL stays
held during the call). Without it (threadctl built with
THREADCTL_WITHOUT_NATIVE=1, see setup.py) the same check runs in Python,
with a small race under heavy load, and the first forced stop logs that once.
"""

from __future__ import annotations

import ctypes
import logging
from types import CodeType, FrameType

from threadctl import _native_library
from threadctl._core import landing

logger = logging.getLogger("threadctl")

_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_installed = False


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
