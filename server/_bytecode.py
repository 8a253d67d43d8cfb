"""Which call a frame is in the middle of, read from its bytecode.

A thread blocked in C (time.sleep, lock.acquire, sock.recv) has, as its
innermost Python frame, the caller, stopped at a call instruction; a thread
executing Python code (or waiting for the GIL between two bytecodes) is not.
The callee is the expression that produced the callable, not whatever was
loaded last: in `time.sleep(self.interval)` that is `sleep`, not `interval`.

- CPython 3.11+: every instruction carries the source span it came from. The
  callable's expression starts where the call starts and ends before the
  call's end; of the instructions with such spans, the one with the widest
  span made the callable (in `a.b().c(x)`: `c`, not `a`, `b` or `a.b()`).
- CPython 3.10 has no columns: walk back from the call by stack effects to
  the instruction that pushed the callable, and give up where a jump target
  lies on the way (another path joins there, so the walk cannot tell which
  instructions ran).

A callable with no simple name (`handlers[k](x)`, `f()(x)`) gives "", and so
does code compiled without column positions (`-X no_debug_ranges`). Results
are cached per (code object, offset), so a listing of many threads parked at
the same place decodes each place once.

Not shipped into one-shot targets (`dis` loads an extension that would stay
there): the client runs it on the code object a job sends back marshalled
(client/attach/_oneshot.py).
"""

from __future__ import annotations

import dis
import sys
from types import CodeType

_CALL_OPS = frozenset(
    name
    for name in dis.opname
    if name.startswith(("CALL", "PRECALL")) or name in ("BEFORE_WITH", "SETUP_WITH")
)
# (id(code), lasti) -> (code, callee). Keyed by identity: hashing a code object
# hashes its bytecode and constants on every lookup (microseconds for a big
# function); the code kept in the value keeps its id from being reused.
_callee_cache: dict[tuple[int, int], tuple[CodeType, str | None]] = {}
_CACHE_LIMIT = 20_000

# Loads whose argument is the callee's name (an attribute, global or local).
_NAME_LOADS = frozenset(
    {
        "LOAD_NAME", "LOAD_GLOBAL", "LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_DEREF",
        "LOAD_CLASSDEREF", "LOAD_FROM_DICT_OR_GLOBALS", "LOAD_FROM_DICT_OR_DEREF",
        "LOAD_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR",
    }
)  # fmt: skip
# 3.11+: instructions that carry the callable's span but do not make it.
_NOT_THE_CALLABLE = frozenset({"PUSH_NULL", "KW_NAMES", "EXTENDED_ARG", "NOP", "CACHE"})


def current_call(code: CodeType, lasti: int) -> str | None:
    """The name of the callable the frame is calling right now, "" if it is in
    a call whose callee has no simple name, None if it is between bytecodes.
    `lasti` is frame.f_lasti."""
    key = (id(code), lasti)
    cached = _callee_cache.get(key)
    if cached is not None and cached[0] is code:
        return cached[1]
    if len(_callee_cache) > _CACHE_LIMIT:
        _callee_cache.clear()
    found = _find_callee(code, lasti)
    _callee_cache[key] = (code, found)
    return found


def _find_callee(code: CodeType, lasti: int) -> str | None:
    instructions = list(dis.get_instructions(code))
    # The instruction at lasti; on 3.11+ a caller of a Python function has
    # lasti on the call's inline cache entries, which belong to the call.
    at = None
    for index, ins in enumerate(instructions):
        if ins.offset > lasti:
            break
        at = index
    if at is None:
        return None
    opname = instructions[at].opname
    if opname not in _CALL_OPS:
        return None
    if opname in ("BEFORE_WITH", "SETUP_WITH"):
        return "__enter__"
    if opname.startswith("CALL_INTRINSIC"):  # 3.12+: an interpreter helper, no callable
        return ""
    if sys.version_info >= (3, 11):
        return _callee_by_position(instructions, at)
    return _callee_by_stack(instructions, at)


def _callee_by_position(instructions: list[dis.Instruction], at: int) -> str:
    """3.11+: the name loaded by the widest instruction that starts where the
    call starts and ends inside it (ties: the first, as kwnames constants and
    PUSH_NULL share the callable's span on some versions)."""
    if sys.version_info < (3, 11):  # no positions (never called there)
        return ""
    call = instructions[at]
    span = call.positions
    if span is None or span.col_offset is None or span.end_col_offset is None:
        return ""
    start = (span.lineno, span.col_offset)
    end = (span.end_lineno, span.end_col_offset)
    best, best_end = "", None
    previous = None
    for ins in instructions:
        here = ins.positions
        if (
            here is not None
            and (here.lineno, here.col_offset) == start
            and here.end_lineno is not None
            and here.end_col_offset is not None
        ):
            if ins.opname == "BEFORE_WITH" and here == span and ins.offset < call.offset:
                return "__exit__"  # leaving a `with`: CPython gives that call the with's span
            stop = (here.end_lineno, here.end_col_offset)
            name = _spanned_name(ins, previous)
            if name is not None and stop < end and (best_end is None or stop > best_end):
                best, best_end = name, stop
        previous = ins
    return best


def _spanned_name(ins: dis.Instruction, previous: dis.Instruction | None) -> str | None:
    """What `ins` says the callable is called, if it made it; None if it
    cannot have made it."""
    if ins.opname == "PUSH_NULL" and previous is not None and _fused_load(previous):
        # 3.13 fuses two local loads (`print(a, fn(b))`: LOAD_FAST_LOAD_FAST a, fn)
        # under the first one's span; the PUSH_NULL after the callable keeps its span.
        return str(previous.argval[-1])
    if ins.opname in _NOT_THE_CALLABLE:
        return None
    return _name_of(ins)


def _fused_load(ins: dis.Instruction) -> bool:
    return (
        isinstance(ins.argval, tuple) and len(ins.argval) == 2 and ins.opname.endswith("LOAD_FAST")
    )


def _name_of(ins: dis.Instruction) -> str:
    if ins.opname in _NAME_LOADS and isinstance(ins.argval, str):
        return ins.argval
    return ""


# --- CPython 3.10: walk back by stack effects --------------------------------------

# What instructions push when they fall through: nothing (these, stores,
# deletes, pops, jumps), one value (these, loads, operators, builds, calls) or
# several (_PUSH_MANY). The walk gives up at any other instruction.
_PUSH_NONE = frozenset(
    {
        "LIST_APPEND", "SET_ADD", "MAP_ADD", "LIST_EXTEND", "SET_UPDATE", "DICT_UPDATE",
        "DICT_MERGE", "PRINT_EXPR", "IMPORT_STAR", "SETUP_ANNOTATIONS", "SETUP_FINALLY",
        "NOP", "EXTENDED_ARG", "GEN_START", "RETURN_VALUE", "RAISE_VARARGS", "RERAISE",
    }
)  # fmt: skip
_PUSH_ONE = frozenset(
    {
        "COMPARE_OP", "IS_OP", "CONTAINS_OP", "MAKE_FUNCTION", "FORMAT_VALUE", "GET_ITER",
        "GET_YIELD_FROM_ITER", "GET_AWAITABLE", "GET_AITER", "GET_ANEXT", "IMPORT_NAME",
        "IMPORT_FROM", "LIST_TO_TUPLE", "YIELD_VALUE", "YIELD_FROM", "GET_LEN",
    }
)  # fmt: skip
# Instructions that push several values: how many. Of these only LOAD_METHOD
# and SETUP_WITH (__exit__) name a callable: ROT_* reorder what they push,
# DUP_TOP* push copies.
_PUSH_MANY = {
    "LOAD_METHOD": 2, "SETUP_WITH": 2, "DUP_TOP": 2, "DUP_TOP_TWO": 4,
    "ROT_TWO": 2, "ROT_THREE": 3, "ROT_FOUR": 4,
}  # fmt: skip


def _callee_by_stack(instructions: list[dis.Instruction], at: int) -> str:
    """3.10: the instruction that pushed the callable, found by walking back
    from the call and undoing each instruction's stack effect."""
    depth = _values_above_callable(instructions[at])  # the callable's, from the top
    if depth is None:
        return ""
    for index in range(at - 1, -1, -1):
        if instructions[index + 1].is_jump_target:
            return ""  # another path joins here: the stack below is not this path's alone
        ins = instructions[index]
        pushed = _pushes(ins)
        if pushed is None:
            return ""
        arg = ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None
        popped = pushed - dis.stack_effect(ins.opcode, arg, jump=False)
        if popped < 0:
            return ""
        if depth < pushed:  # `ins` pushed the callable
            if ins.opname == "SETUP_WITH":  # pushed __exit__ (deeper), then __enter__'s result
                return "__exit__" if depth == 1 else ""
            return _name_of(ins)
        depth += popped - pushed
    return ""


def _values_above_callable(call: dis.Instruction) -> int | None:
    arg = call.arg or 0
    if call.opname in ("CALL_FUNCTION", "CALL_METHOD"):  # callable (or method, self), args
        return arg
    if call.opname == "CALL_FUNCTION_KW":  # callable, args, tuple of keyword names
        return arg + 1
    if call.opname == "CALL_FUNCTION_EX":  # callable, args tuple, kwargs dict if arg & 1
        return 1 + (arg & 1)
    return None


def _pushes(ins: dis.Instruction) -> int | None:
    """How many values `ins` pushes when it falls through; None if unknown."""
    name = ins.opname
    if name in _PUSH_MANY:
        return _PUSH_MANY[name]
    if name in ("ROT_N", "UNPACK_SEQUENCE"):
        return ins.arg
    if name in _PUSH_NONE or name.startswith(("STORE_", "DELETE_", "POP_", "JUMP_")):
        return 0
    if name in _PUSH_ONE or name.startswith(
        ("LOAD_", "BINARY_", "INPLACE_", "UNARY_", "BUILD_", "CALL_")
    ):
        return 1
    return None
