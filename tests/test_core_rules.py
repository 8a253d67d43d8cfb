"""The rules of threadctl's core (server/_core/__init__.py), which one-shot
jobs ship whole into processes that never imported threadctl: standard
library only, nothing that would load an extension or `threading` into the
process, relative imports between its modules, and importing one does
nothing but define names. Checked on the sources, and by loading every
core module the way a job does, in a bare interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import DEADLINE
from threadctl.client.attach import _jobs

CORE = Path(_jobs._CORE)
MODULES = sorted(CORE.glob("*.py"))
# What a bare interpreter has loaded, or loads without an extension module.
AT_RUN_TIME = {"__future__", "sys", "os", "_thread", "gc", "time", "marshal"}
IN_FUNCTIONS = AT_RUN_TIME | {"ast"}  # pure Python over the built-in _ast


def _runtime_imports(tree: ast.Module) -> list[tuple[ast.stmt, bool]]:
    """Each import statement that runs (not under `if TYPE_CHECKING:`), and
    whether it is at module level."""
    found: list[tuple[ast.stmt, bool]] = []

    def visit(nodes: list[ast.stmt], top: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                visit(node.orelse, top)  # the `else:` branch runs
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append((node, top))
            for field in ("body", "orelse", "handlers", "finalbody"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    visit(inner, top and not isinstance(node, (ast.FunctionDef, ast.ClassDef)))
                elif isinstance(inner, list):
                    for handler in inner:
                        if isinstance(handler, ast.ExceptHandler):
                            visit(handler.body, top)

    visit(tree.body, True)
    return found


@pytest.mark.parametrize("path", MODULES, ids=[path.name for path in MODULES])
def test_a_core_module_imports_only_what_a_bare_interpreter_has(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node, top in _runtime_imports(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            continue  # a sibling in the core
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [
            alias.name for alias in node.names
        ]  # fmt: skip
        allowed = AT_RUN_TIME if top else IN_FUNCTIONS
        for name in names:
            assert name.split(".")[0] in allowed, f"{path.name}:{node.lineno} imports {name}"


def test_every_core_module_is_shipped_in_one_shot_jobs() -> None:
    shipped = set(_jobs._CORE_MODULES)
    assert {path.stem for path in MODULES} - {"__init__"} == shipped


def test_loading_the_core_as_a_job_does_loads_nothing_else() -> None:
    # The runner's own loader, the shipped sources, a bare interpreter (-I -S).
    sources = {name: (CORE / f"{name}.py").read_text() for name in _jobs._CORE_MODULES}
    runner = (Path(_jobs._TARGET) / "runner.py").read_text()
    script = (
        f"{runner}\n"
        "import sys, _thread\n"
        "before, threads = set(sys.modules), _thread._count()\n"
        f"_load({sources!r})\n"
        "print(sorted(set(sys.modules) - before), _thread._count() - threads)\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script],
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    loaded, threads = done.stdout.rsplit(" ", 1)
    new = json.loads(loaded.replace("'", '"'))
    assert int(threads) == 0  # importing starts no thread
    assert {name for name in new if not name.startswith("__threadctl_job__")} <= AT_RUN_TIME
