"""Which call a frame is in the middle of, read from its bytecode.

A thread blocked in C (time.sleep, lock.acquire, sock.recv) has, as its
innermost Python frame, the caller, stopped at a call instruction; a thread
executing Python code (or waiting for the GIL between two bytecodes) is not.
The callee's name is the attribute or global loaded just before the call.
Results are cached per (code object, offset), so a listing of many threads
parked at the same place decodes each place once.
"""

from __future__ import annotations

import dis
from types import CodeType

_CALL_OPS = frozenset(
    name
    for name in dis.opname
    if name.startswith(("CALL", "PRECALL")) or name in ("BEFORE_WITH", "SETUP_WITH")
)
_callee_cache: dict[tuple[CodeType, int], str | None] = {}
_CACHE_LIMIT = 20_000


def current_call(code: CodeType, lasti: int) -> str | None:
    """The name of the callable the frame is calling right now, "" if it is in
    a call whose callee has no simple name, None if it is between bytecodes.
    `lasti` is frame.f_lasti."""
    key = (code, lasti)
    if key in _callee_cache:
        return _callee_cache[key]
    if len(_callee_cache) > _CACHE_LIMIT:
        _callee_cache.clear()
    _callee_cache[key] = found = _find_callee(code, lasti)
    return found


def _find_callee(code: CodeType, lasti: int) -> str | None:
    instructions = list(dis.get_instructions(code))
    at = next((i for i, ins in enumerate(instructions) if ins.offset >= lasti), None)
    if at is None:
        return None
    if instructions[at].opname not in _CALL_OPS:
        return None
    if instructions[at].opname in ("BEFORE_WITH", "SETUP_WITH"):
        return "__enter__"
    for previous in reversed(instructions[max(0, at - 12) : at]):
        if previous.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_GLOBAL", "LOAD_NAME"):
            return str(previous.argval)
    return ""
