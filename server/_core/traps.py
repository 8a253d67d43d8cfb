"""Line traps: a forced stop raised at a line of the task's own code, by the
thread itself (CPython 3.13 and later).

On 3.13 an exception queued while a thread waits inside the standard
library's lock code is raised at a place nobody can predict (see
landing.safe_lines), so a stop of a thread blocked in Event.wait or
Queue.get cannot be queued there. It waits, and this module sets a trap
instead: sys.monitoring LINE events on the code objects of the task's
frames (landing.Landing.task). When the thread runs the next line of one of
them (its wait returned, it is back in its own code), the callback, running
in that thread, raises the stop: the cleanest place a stop can have, the
start of a line of the code it was meant for, as if that line began with
`raise`. Not at every line. Only at a line under the same exception handler
as where the frame was when the stop was asked: a stop asked while
`try: time.sleep(2) except ThreadStopped:` sleeps must be raised inside
that `try` (the loop header that runs next is outside it), as a queued
exception would have been. Not at a `with` header's line, which is also
where the block's exit runs, nor in except and finally bodies, which are
cleanup (source.cleanup_lines). And not at an instruction of a try or with
block that the exception table leaves out: the compiler omits instructions
it assumes cannot raise (measured on 3.13: the NOP of a `pass`), and an
exception raised there skips the function's `with` exits and `except`
blocks (a semaphore left held in 1 of 3 random stops of
`while True: with sem: pass`). The trap waits for another line.

Cost: while a trap is set, every line of those code objects calls the
callback, in every thread that runs them (the others return at once), so
traps are removed as soon as the stop lands or is over. A debugger or
coverage tool holding both tool ids that are free by convention (3 and 4)
leaves no room for the trap: then the stop waits for the landing thread.
"""

from __future__ import annotations

import _thread
import sys

from .source import block_lines, cleanup_lines

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import CodeType, FrameType

    # called in the trapped thread at a line of its task: the exception to
    # raise there, or None (the stop landed meanwhile, or is over)
    Spring = Callable[[], type[BaseException] | None]

AVAILABLE = sys.version_info >= (3, 13) and hasattr(sys, "monitoring")
_TOOL_IDS = (4, 3)
_tool: int | None = None
_lock = _thread.allocate_lock()  # arm and disarm run in several threads
# code object -> {thread ident: (the stop, {task frame: its handler when armed}, spring)}
_armed: dict[CodeType, dict[int, tuple[object, dict[FrameType, int | None], Spring]]] = {}
_handlers: dict[CodeType, list[tuple[int, int, int | None]]] = {}
_block_lines: dict[CodeType, set[int]] = {}  # lines inside try and with blocks
_restoring: tuple[set[int], int] | None = None  # see _comprehension_handler


def arm(stop: object, ident: int, task: frozenset[FrameType], spring: Spring) -> bool:
    """Trap the next line thread `ident` runs in one of `task`'s frames, for
    the stop `stop` (any object naming it, given again to disarm). False
    where no trap can be set (older CPython, no free tool id)."""
    # (The version test, though implied by AVAILABLE, tells type checkers.)
    if sys.version_info < (3, 13) or not AVAILABLE:
        return False
    tool = _claim_tool()
    if tool is None:
        return False
    monitoring = sys.monitoring
    for frame in task:  # read the source now, not in the trapped thread
        cleanup_lines(frame.f_code)
        if frame.f_code not in _block_lines:
            _block_lines[frame.f_code] = block_lines(frame.f_code, "blocks")
    where = {frame: handler_at(frame.f_code, frame.f_lasti) for frame in task}
    with _lock:
        for frame in task:
            threads = _armed.setdefault(frame.f_code, {})
            if not threads:
                monitoring.set_local_events(tool, frame.f_code, monitoring.events.LINE)
            threads[ident] = (stop, where, spring)
    return True


def handler_at(code: CodeType, offset: int) -> int | None:
    """The offset of the exception handler that an exception raised at
    instruction `offset` of `code` reaches (None: it leaves the function),
    from the code's exception table (format: CPython's
    InternalDocs/exception_handling.md).

    Handlers that only put locals back and re-raise are looked through: an
    inlined list, dict or set comprehension (CPython 3.12 and later) runs
    under one that restores the variable it shadowed, and an exception raised
    inside it reaches the handler around the comprehension, as one raised on
    the lines around it does. Without that, a stop asked while a thread was
    inside `[q.get() for _ in range(n)]` waited for a line under the
    comprehension's own handler, which no line after it has: it never landed."""
    if sys.version_info < (3, 11):  # no table (and no traps: see AVAILABLE)
        return None
    if code not in _handlers:
        raw = _table(code)
        _handlers[code] = [(start, end, _reached(code, raw, target)) for start, end, target in raw]
    return next((target for start, end, target in _handlers[code] if start <= offset < end), None)


def _table(code: CodeType) -> list[tuple[int, int, int]]:
    """The (start, end, handler) offsets of `code`'s exception table."""
    if sys.version_info < (3, 11):  # no table
        return []
    entries, table = [], iter(code.co_exceptiontable)
    try:
        while True:
            start = _varint(table) * 2
            end = start + _varint(table) * 2
            entries.append((start, end, _varint(table) * 2))
            _varint(table)  # stack depth and lasti flag
    except StopIteration:
        return entries


def _reached(code: CodeType, table: list[tuple[int, int, int]], target: int) -> int | None:
    """The first handler from `target` on that does more than restore and re-raise."""
    seen: set[int] = set()
    while target not in seen and _restores_only(code.co_code, target):
        seen.add(target)
        covering = next((handler for start, end, handler in table if start <= target < end), None)
        if covering is None:
            return None  # it re-raises out of the function
        target = covering
    return target


def _restores_only(bytecode: bytes, offset: int) -> bool:
    """Whether the handler at `offset` only moves values into locals until it
    re-raises (none of those instructions has inline caches)."""
    global _restoring
    if _restoring is None:
        _restoring = _comprehension_handler()
    moves, reraise = _restoring
    for at in range(offset, len(bytecode), 2):
        if bytecode[at] == reraise:
            return True
        if bytecode[at] not in moves:
            return False
    return False


def _comprehension_handler() -> tuple[set[int], int]:
    """The opcodes of an inlined comprehension's exception handler but its
    last, and that last one (RERAISE), read off one compiled here: the opcode
    module would load a C extension (_opcode) into a one-shot's target, which
    must be left as it was found. (A handler restoring a local numbered over
    255 has an EXTENDED_ARG, not learnt here: it is not looked through.)"""
    module = compile("def f():\n    return [x for x in ()]\n", "<threadctl>", "exec")
    (code,) = [c for c in module.co_consts if hasattr(c, "co_exceptiontable")]
    entries = _table(code)
    if not entries:  # CPython 3.11: the comprehension is a function of its own
        return set(), -1
    ops = code.co_code[entries[-1][2] :: 2]
    return set(ops[:-1]), ops[-1]


def _varint(table: Iterator[int]) -> int:
    byte = next(table)
    value = byte & 63
    while byte & 64:
        byte = next(table)
        value = (value << 6) | (byte & 63)
    return value


def disarm(stop: object) -> None:
    """Remove every trap set for `stop` (idempotent). By stop, not by thread:
    a thread's ident is reused by the next thread as soon as it ends, and
    ending an old stop must not remove the trap of a new one."""
    with _lock:
        for code, threads in list(_armed.items()):
            for ident in [ident for ident, (armed, _, _) in threads.items() if armed is stop]:
                del threads[ident]
            if not threads:
                del _armed[code]
                if _tool is not None and sys.version_info >= (3, 12):
                    sys.monitoring.set_local_events(_tool, code, 0)


def release() -> None:
    """Give the tool id back once no trap is set (a one-shot job, which must
    leave nothing of its own registered in the process)."""
    global _tool
    with _lock:
        if _tool is None or _armed or sys.version_info < (3, 12):
            return
        sys.monitoring.register_callback(_tool, sys.monitoring.events.LINE, None)
        sys.monitoring.free_tool_id(_tool)
        _tool = None


def _on_line(code: CodeType, line: int) -> object:
    threads = _armed.get(code)
    if not threads:
        return None
    ident = _thread.get_ident()
    found = threads.get(ident)
    if found is None:
        return None
    stop, where, spring = found
    frame = sys._getframe(1)
    if frame not in where:
        return None  # another frame running the same code
    handler = handler_at(code, frame.f_lasti)
    if (
        handler != where[frame]
        or line in cleanup_lines(code)
        or (handler is None and line in _block_lines.get(code, ()))
    ):
        return None  # not a line to raise at

    disarm(stop)
    exception = spring()
    if exception is not None:
        raise exception
    return None


def _claim_tool() -> int | None:
    """The tool id of our traps (claimed at the first use), or None if none is free."""
    global _tool
    if _tool is not None or sys.version_info < (3, 12):
        return _tool
    monitoring = sys.monitoring
    for tool in _TOOL_IDS:
        try:
            monitoring.use_tool_id(tool, "threadctl")
        except ValueError:
            continue  # taken by someone else
        monitoring.register_callback(tool, monitoring.events.LINE, _on_line)
        _tool = tool
        return tool
    return None
