"""threadctl's core: what also runs inside processes that never imported threadctl.

A one-shot `--attach` job ships these modules' sources whole into the target
process and runs them there (client/attach/target), while the host side
imports the very same files: one frame walk with its lock and GC pause, one
landing check for forced stops, one /proc parser, one table of known waits.

Rules for every module here (tests/test_core_rules.py checks them):
- Standard library only, and only what a bare interpreter has loaded or can
  load without leaving an extension module mapped: `sys`, `os`, `_thread`,
  `gc`, `time`, `marshal`. No `threading` import (importing it into a
  process from a foreign thread would make that thread its main thread): a
  caller that has threads passes them in, or the code reads
  `sys.modules.get("threading")`. No `dataclasses`/`inspect`/`dis` (they
  load `_opcode`), `json`, `ctypes`, `typing` at run time: type-only imports
  sit under `if TYPE_CHECKING:`.
- Relative imports between these modules only (in a job they live under a
  private package name); nothing from the rest of threadctl.
- Importing a module defines names and does nothing else: no threads, no
  at-fork or atexit hooks, no I/O. The host registers what it needs.
"""
