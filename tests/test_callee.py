"""current_call names the function being called, not its last argument.

Each snippet runs for real, with probes standing in for what it calls: a
probe, when called (or entered, or exited), asks current_call about its
caller's frame as that frame is now, parked at the call instruction. Every
snippet runs both as module code (names are LOAD_NAME) and as a function
(globals, locals, closures), on whichever CPython runs the tests.
"""

from __future__ import annotations

import dis
import subprocess
import sys
import textwrap
from types import CodeType, FrameType
from typing import Any

import pytest

from threadctl._bytecode import current_call

PY310 = sys.version_info < (3, 11)


class Probe:
    """Anything a snippet calls: records current_call of the calling frame."""

    def __init__(self, seen: list[str | None]) -> None:
        self._seen = seen

    def _record(self, caller: FrameType) -> Probe:
        self._seen.append(current_call(caller.f_code, caller.f_lasti))
        return self

    def __call__(self, *args: object, **kwargs: object) -> Probe:
        return self._record(sys._getframe(1))

    def __getattr__(self, name: str) -> Probe:
        return self

    def __getitem__(self, key: object) -> Probe:
        return self

    def __enter__(self) -> Probe:
        return self._record(sys._getframe(1))

    def __exit__(self, *exc: object) -> None:
        self._record(sys._getframe(1))


MANY_ARGS = "f(" + ", ".join(["x"] * 300) + ")"  # EXTENDED_ARG before the call

# snippet -> what current_call says at each call it makes, in order.
SNIPPETS: dict[str, list[str]] = {
    "time.sleep(INTERVAL)": ["sleep"],
    "time.sleep(self.interval)": ["sleep"],
    'time.sleep(float(os.environ.get("THREADCTL_TEST_UNSET", "1")))': ["sleep"],
    "time.sleep(\n    abs(\n        INTERVAL,\n    ),\n)": ["sleep"],
    "a.b().c(x)": ["b", "c"],
    "(\n    a.b(x)\n    .c(y)\n    .d()\n)": ["b", "c", "d"],
    "handlers[k](x)": [""],
    "f()(x)": ["f", ""],
    "lock.acquire(timeout=T)": ["acquire"],
    "lock.acquire(\n    True,\n    timeout=T,\n)": ["acquire"],
    "f(*args, **kwargs)": ["f"],
    "a.m(x, *args, k=1, **kwargs)": ["m"],
    "outer(inner(x), y)": ["inner", "outer"],
    "time.sleep(lambda: x)": ["sleep"],
    "with lock:\n    pass": ["__enter__", "__exit__"],
    "with a.b(x) as held:\n    pass": ["b", "__enter__", "__exit__"],
    # 3.10: both ways out of the inner `with` join before the outer __exit__.
    "with a, lock:\n    pass": ["__enter__", "__enter__", "__exit__", "" if PY310 else "__exit__"],
    "[x, f(y)]": ["f"],
    MANY_ARGS: ["f"],
    # 3.10 compiles the conditional to a jump that lands on the call: the walk
    # back cannot tell which branch ran, so it gives up.
    "z = f(x if not y else T)\nz = None": ["" if PY310 else "f"],
}


def _namespace(seen: list[str | None]) -> dict[str, Any]:
    probe = Probe(seen)
    names = ["time", "a", "f", "handlers", "lock", "outer", "inner", "self"]
    return {
        **dict.fromkeys(names, probe),
        "os": __import__("os"),
        "INTERVAL": 1,
        "T": 2,
        "x": 3,
        "y": True,
        "k": "key",
        "args": (),
        "kwargs": {},
    }


def _as_module(snippet: str) -> list[str | None]:
    seen: list[str | None] = []
    exec(compile(snippet, "<snippet>", "exec"), _namespace(seen))
    return seen


def _as_function(snippet: str) -> list[str | None]:
    """The snippet in a function, with `f` and `lock` as locals (LOAD_FAST)
    and `a` from a closure (LOAD_DEREF)."""
    seen: list[str | None] = []
    namespace = _namespace(seen)
    source = (
        "def make(a):\n"
        "    def run(f, lock):\n"
        "        a\n" + textwrap.indent(snippet, " " * 8) + "\n"
        "    return run\n"
    )
    exec(compile(source, "<snippet>", "exec"), namespace)
    namespace["make"](namespace["a"])(namespace["f"], namespace["lock"])
    return seen


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.splitlines()[0][:40])
def test_the_callee_is_named_not_its_arguments(snippet: str) -> None:
    assert _as_module(snippet) == SNIPPETS[snippet]
    assert _as_function(snippet) == SNIPPETS[snippet]


def test_super_method_calls_name_the_method() -> None:
    seen: list[str | None] = []
    probe = Probe(seen)

    class Base:
        def pause(self, seconds: float) -> None:
            probe._record(sys._getframe(1))

    class Child(Base):
        def pause(self, seconds: float) -> None:
            super().pause(seconds)

    Child().pause(1)
    assert seen == ["pause"]


def test_a_local_loaded_beside_another_local_is_still_named() -> None:
    """3.13 fuses `a, fn` into one LOAD_FAST_LOAD_FAST under a's position."""
    seen: list[str | None] = []
    probe = Probe(seen)

    def run(a: object, fn: Probe, b: object) -> list[object]:
        return [a, fn(b)]

    run(1, probe, 2)
    assert seen == ["fn"]


def _calls(code: CodeType) -> list[dis.Instruction]:
    return [i for i in dis.get_instructions(code) if i.opname.startswith(("CALL", "PRECALL"))]


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="PRECALL exists on 3.11 only")
def test_a_builtin_called_from_precall_is_named_like_its_call() -> None:
    """On 3.11 a specialised PRECALL runs builtins itself (time.sleep stops there)."""
    code = compile("time.sleep(float(os.environ.get('X', '1')))", "<snippet>", "exec")
    labels = [(i.opname, current_call(code, i.offset)) for i in _calls(code)]
    assert labels == [
        ("PRECALL", "get"),
        ("CALL", "get"),
        ("PRECALL", "float"),
        ("CALL", "float"),
        ("PRECALL", "sleep"),
        ("CALL", "sleep"),
    ]


def test_between_bytecodes_there_is_no_callee() -> None:
    code = compile("x = a + 1\ntime.sleep(x)", "<snippet>", "exec")
    adds = [i for i in dis.get_instructions(code) if i.opname.startswith("BINARY")]
    assert [current_call(code, i.offset) for i in adds] == [None]
    assert current_call(code, 10_000) is None


@pytest.mark.skipif(PY310, reason="3.10 has no column positions to lose")
def test_code_without_column_positions_gives_no_name_rather_than_a_wrong_one() -> None:
    probe = (
        "import sys; from threadctl._bytecode import current_call\n"
        "def sleep(s): f = sys._getframe(1); print(repr(current_call(f.f_code, f.f_lasti)))\n"
        "class time: sleep = staticmethod(sleep)\n"
        "INTERVAL = 1\n"
        "time.sleep(INTERVAL)\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "no_debug_ranges", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "''"
