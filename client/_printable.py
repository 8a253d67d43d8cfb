"""Text from a target process, made safe to print on an operator's terminal.

Thread names, argv, file and function names, reasons and error details come
from the process being inspected, which may belong to another user (root
runs threadctl against anyone's process). Printed raw, an escape sequence in
a thread name reaches the operator's terminal: it can retitle the window,
clear the screen, fake lines of output, or (with some terminals) answer back
into the shell (issue 18.6). Bidirectional overrides reorder what is shown,
so a name can read as something else.

So every human output escapes, field by field before layout: C0 controls
(tab and newline included: a name must not start a fake line), DEL, C1
controls, the bidirectional controls (U+061C, U+200E, U+200F, U+202A to
U+202E, U+2066 to U+2069) and the line and paragraph separators (U+2028,
U+2029). They are shown as `\\xNN` or `\\uNNNN`. `--json` is left exact:
it is data, and JSON escapes control characters itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

_T = TypeVar("_T")

_ESCAPED = [*range(0x00, 0x20), *range(0x7F, 0xA0)]
_ESCAPED += [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPED += [0x2028, 0x2029]
_TABLE = {code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in _ESCAPED}


def printable(text: str) -> str:
    """`text` with the characters that could act on a terminal escaped."""
    return text.translate(_TABLE)


def printable_copy(value: _T) -> _T:
    """A copy of `value` (a result of the client: dataclasses, lists, tuples,
    strings) with every string in it made printable, so a renderer cannot
    forget a field."""
    copy: _T = _copy(value)
    return copy


def _copy(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, tuple):
        items = [_copy(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _copy(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value
