"""Lines of a function's source, by what they do, for deciding where a stop
may be raised (landing.safe_lines, traps).

Read from the function's file and parsed with `ast` (pure Python and
builtins: a one-shot job removes it again), once per code object.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast
    from types import CodeType

_cleanup: dict[CodeType, set[int]] = {}


def block_lines(code: CodeType, where: str) -> set[int]:
    """Lines of the function `code` belongs to: "all" of them, those inside
    its try and with blocks ("blocks"), or those calling TEXT ("call:TEXT")."""
    node, texts = _function(code)
    if node is None:
        return set()
    import ast

    end = node.end_lineno or node.lineno
    if where.startswith("call:"):
        return {n for n in range(node.lineno, end + 1) if where[5:] in texts[n - 1]}
    blocks: list[ast.AST] = (
        [node]
        if where == "all"
        else [s for s in ast.walk(node) if isinstance(s, ast.Try | ast.With)]
    )
    return {line for block in blocks for line in _body_lines(getattr(block, "body", []))}


def cleanup_lines(code: CodeType) -> set[int]:
    """Lines of the function `code` belongs to where an exception raised at
    the start of the line would cut cleanup short: `with` headers (a with
    block's exit runs at its header's line), and the bodies of except and
    finally blocks."""
    if code not in _cleanup:
        node, _texts = _function(code)
        lines: set[int] = set()
        if node is not None:
            import ast

            for statement in ast.walk(node):
                if isinstance(statement, ast.With | ast.AsyncWith):
                    first_body = statement.body[0].lineno if statement.body else statement.lineno
                    lines.update(range(statement.lineno, max(first_body, statement.lineno + 1)))
                elif isinstance(statement, ast.Try):
                    lines.update(_body_lines(statement.finalbody))
                    for handler in statement.handlers:
                        lines.update(_body_lines(handler.body))
        _cleanup[code] = lines
    return _cleanup[code]


def _function(code: CodeType) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef | None, list[str]]:
    import ast

    try:
        with open(code.co_filename, encoding="utf-8") as f:
            source = f.read()
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return None, []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == code.co_name
            and node.lineno <= code.co_firstlineno <= (node.end_lineno or node.lineno)
        ):
            return node, source.splitlines()
    return None, []


def _body_lines(statements: list[ast.stmt]) -> set[int]:
    return {
        line
        for statement in statements
        for line in range(statement.lineno, (statement.end_lineno or statement.lineno) + 1)
    }
