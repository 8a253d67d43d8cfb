"""The launcher's command line: where threadctl's options end and the program's begin.

`python -m threadctl [options] script.py args...` and `... [options] -m module
args...` split the line the way `python` itself and `python -m cProfile` do:
threadctl's options come first; the first word that is not one of them (the
script), `-m MODULE` (also `-mMODULE`), or `--` followed by the script ends
them, and everything after belongs to the program, untouched (`--bind`, `-b`,
`--` and `-h` included). argparse alone cannot draw that line: it takes the
program's options for its own (issue 13.7), so the split is done here and
argparse only parses threadctl's part (types, help).

Errors are one line on stderr and exit status 2, never a traceback: a host's
launch script should see why at a glance.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
from dataclasses import dataclass
from typing import NoReturn

PROG = "python -m threadctl"
USAGE = f"{PROG} [options] (script.py | -m module | -- script.py) [args ...]"

# threadctl's options that take a value (`--socket PATH` or `--socket=PATH`):
# the split must skip the value, which may look like a script name. Keep in
# step with _parser() (a test runs each option).
_TAKES_VALUE = frozenset({"--socket", "--stop-on-signals", "--grace"})


@dataclass(frozen=True)
class Launch:
    """What to run, and how threadctl is set up around it."""

    options: argparse.Namespace
    script: str | None  # a path, as given; None with a module
    module: str | None  # a module name for -m; None with a script
    args: list[str]  # the program's own arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(message, usage=True)


def fail(message: str, *, usage: bool = False) -> NoReturn:
    """One line on stderr and exit status 2, as argparse's usage errors (but
    without the usage block: the line is the message)."""
    hint = f" (see {PROG} --help)" if usage else ""
    print(f"{PROG}: error: {message}{hint}", file=sys.stderr)
    sys.exit(2)


def parse(argv: list[str]) -> Launch:
    """Split `argv` (without the interpreter and `-m threadctl`) and check it.

    Checks what `python` would check before running anything: the script can
    be opened, the module can be found (which imports its parent packages, as
    `python -m` does). Exits with status 2 and one line on stderr otherwise.
    """
    own, program = _split(argv)
    options = _parser().parse_args(own)
    if program is None:
        fail("give a script to run, or -m MODULE", usage=True)
    kind, name, args = program
    if kind == "module":
        if not name:
            fail("-m needs a module name", usage=True)
        return Launch(options, None, name, args)
    _check_script(name)
    return Launch(options, name, None, args)


def _split(argv: list[str]) -> tuple[list[str], tuple[str, str, list[str]] | None]:
    """(threadctl's words, (kind, script or module, program args) or None)."""
    own: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            rest = argv[i + 1 :]
            if not rest:
                fail("give a script after --", usage=True)
            return own, ("script", rest[0], rest[1:])
        if word == "-m":
            if i + 1 == len(argv):
                fail("-m needs a module name", usage=True)
            return own, ("module", argv[i + 1], argv[i + 2 :])
        if word.startswith("-m"):  # -mhttp.server, as python accepts
            return own, ("module", word[2:], argv[i + 1 :])
        if not word.startswith("-") or word == "-":
            return own, ("script", word, argv[i + 1 :])
        own.append(word)
        if word in _TAKES_VALUE and i + 1 < len(argv):
            own.append(argv[i + 1])
            i += 1
        i += 1
    return own, None


def _check_script(script: str) -> None:
    if script == "-":
        fail("reading the program from stdin is not supported: give a script file")
    if os.path.isdir(script):
        mains = (os.path.join(script, f"__main__{ext}") for ext in (".py", ".pyc"))
        if not any(os.path.exists(main) for main in mains):
            fail(f"can't find '__main__' module in {script!r}")
        return
    try:
        with open(script, "rb"):
            pass
    except OSError as error:
        fail(f"can't open file {os.path.abspath(script)!r}: [Errno {error.errno}] {error.strerror}")


def module_origin(name: str) -> str:
    """The file `python -m name` runs (a package runs its `__main__`), which
    CPython also puts in sys.argv[0]. Imports the parent packages, as runpy does.

    Exits with status 2 and one line on stderr if there is no such module.
    """
    if name.startswith("."):
        fail(f"relative module names are not supported: {name!r}")
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            main = importlib.util.find_spec(f"{name}.__main__")
            if main is None:
                fail(f"no module named {name}.__main__; {name!r} is a package and cannot be run")
            spec = main
    except (ImportError, ValueError) as error:
        fail(f"error while finding module {name!r}: {type(error).__name__}: {error}")
    if spec is None:
        fail(f"no module named {name!r}")
    if spec.origin is None or not spec.has_location:
        return name  # a frozen or namespace module: nothing better to show
    return spec.origin


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        usage=USAGE,
        allow_abbrev=False,
        description="Run a Python program with the threadctl control server installed."
        " threadctl's options come first; everything after the script, after -m MODULE"
        " or after `--` belongs to the program.",
        epilog="If the control server cannot start (e.g. no private directory for its"
        " socket), the program runs anyway, without it, after one warning line on stderr.",
    )
    parser.add_argument("--socket", metavar="PATH", help="listen here instead of the default")
    parser.add_argument(
        "--print-address", action="store_true", help="print the server address to stderr"
    )
    parser.add_argument(
        "--stop-on-signals",
        metavar="SIGNALS",
        type=_signals,
        default=(),
        help="comma-separated signals (e.g. INT,TERM) that stop every thread gracefully:"
        " the first starts a cooperative stop, a second forces it; then the program's own"
        " handling goes on",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="with --stop-on-signals: how long threads get to exit by themselves (default 5)",
    )
    parser.add_argument(
        "--name-os-threads",
        action="store_true",
        help="give every Python thread its name at OS level too, as top -H and ps -L show"
        " it (15 bytes)",
    )
    parser.add_argument(
        "--force-after-grace",
        action="store_true",
        help="with --stop-on-signals: force-stop the threads still alive after the grace",
    )
    # Never reaches parse_args (_split takes it); listed for --help.
    parser.add_argument(
        "-m",
        metavar="MODULE",
        dest="_module",
        help="run a library module as a script, as python -m does; the rest of the"
        " command line goes to it",
    )
    return parser


def _signals(text: str) -> tuple[signal.Signals, ...]:
    """ "INT,TERM" or "SIGINT,SIGTERM" -> the signals."""
    try:
        return tuple(
            signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
            for name in (part.strip().upper() for part in text.split(","))
            if name
        )
    except KeyError as unknown:
        raise argparse.ArgumentTypeError(f"unknown signal {unknown}") from None
