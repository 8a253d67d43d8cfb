"""The waits threadctl can name, recognised by code object, not by file name.

A frame is in `queue.Queue.get` when it runs the very code object of the
imported `queue` module's Queue.get, not when its file name ends in
"queue.py": a user's own queue.py (or gevent's threading.py, or any
websocket.py) is not the standard library, and renaming a threadctl file
cannot silently stop its waits being named. Module-wide entries (socket I/O
anywhere in socket.py) match the file the imported module was loaded from.

Only modules already imported are looked at: one that was never imported has
no frames, and threadctl must not import ssl or subprocess into a host just
to recognise them. The tables are rebuilt when one of these modules appears
(or is replaced) in sys.modules.

Part of the core (see __init__): one-shot jobs tag frames with it inside
target processes of any CPython 3.10+.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType


# tag -> (activity, detail). A tag is "module:Qualified.name" for one function
# of the imported module, or "module" for any function in that module's file
# (the detail is then followed by the function's name).
WAITS: dict[str, tuple[str, str]] = {
    "threadctl._flag:sleep": ("sleeping", "threadctl.sleep"),
    "threadctl._waits:get": ("waiting", "threadctl.get"),
    "threadctl._waits:wait": ("waiting", "threadctl.wait"),
    "threadctl._waits:wait_for": ("waiting", "threadctl.wait_for"),
    "queue:Queue.get": ("waiting", "queue.Queue.get"),
    "queue:Queue.put": ("waiting", "queue.Queue.put"),
    "threading:Event.wait": ("waiting", "threading.Event.wait"),
    "threading:Thread.join": ("waiting", "threading.Thread.join"),
    "threading:Semaphore.acquire": ("waiting", "threading.Semaphore.acquire"),
    "threading:Barrier.wait": ("waiting", "threading.Barrier.wait"),
    "threading:Condition.wait": ("waiting", "threading.Condition.wait"),
    "threading:Condition.wait_for": ("waiting", "threading.Condition.wait"),
    "selectors": ("io", "selectors"),
    "socket": ("io", "socket"),
    "ssl": ("io", "ssl"),
    "socketserver": ("io", "socketserver"),
    "subprocess:Popen.wait": ("waiting", "subprocess"),
    "subprocess:Popen._wait": ("waiting", "subprocess"),
    "subprocess:Popen.communicate": ("waiting", "subprocess"),
}
# Modules whose frames are a wait's machinery: every frame in their files gets
# at least the module's name as its tag (threadctl._force: critical sections).
MODULES = (*dict.fromkeys(tag.partition(":")[0] for tag in WAITS), "threadctl._force")

_built: tuple[tuple[object, ...], Callable[[CodeType], str]] | None = None


def tagger() -> Callable[[CodeType], str]:
    """A function from a code object to its tag ("" for code of other
    modules), for the modules imported now. Call once per stack capture: the
    same function comes back until one of the modules appears or changes, so
    callers may cache what they derived from its tags while it is the same."""
    global _built
    # A module is in sys.modules before its body has run: its size tells
    # a finished import from one in progress.
    present = tuple(
        (module, len(getattr(module, "__dict__", ()))) for module in map(sys.modules.get, MODULES)
    )
    if _built is None or _built[0] != present:
        _built = (present, _tag_function(*_tables()))
    return _built[1]


def _tag_function(
    by_code: dict[int, tuple[CodeType, str]], by_file: dict[str, str]
) -> Callable[[CodeType], str]:
    def tag(code: CodeType) -> str:
        hit = by_code.get(id(code))
        if hit is not None and hit[0] is code:
            return hit[1]
        return by_file.get(code.co_filename, "")

    return tag


def _tables() -> tuple[dict[int, tuple[CodeType, str]], dict[str, str]]:
    """Code objects of the known functions (by id: a code object's hash is
    its content, so a user's copy would compare equal), and module files."""
    by_code: dict[int, tuple[CodeType, str]] = {}
    by_file: dict[str, str] = {}
    for name in MODULES:
        module = sys.modules.get(name)
        filename = getattr(module, "__file__", None)
        if isinstance(filename, str):
            by_file[filename] = name
    for tag in WAITS:
        name, _, qualname = tag.partition(":")
        target: object = sys.modules.get(name)
        for attribute in qualname.split(".") if qualname else ():
            target = getattr(target, attribute, None)
        code = getattr(target, "__code__", None)
        if qualname and type(code) is type(_tables.__code__):
            by_code[id(code)] = (code, tag)
    return by_code, by_file
