"""`python -m threadctl [options] script.py [args...]` or `... -m module [args...]`.

Runs an unmodified program with the control server installed, so it can be
listed and stopped with the `threadctl` CLI without touching its code.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys

from threadctl._install import install


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m threadctl",
        description="Run a Python program with the threadctl control server installed.",
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
        "--force-after-grace",
        action="store_true",
        help="with --stop-on-signals: force-stop the threads still alive after the grace",
    )
    # -m takes the rest of the command line, as `python -m` does: the module's
    # own options (`-m waitress --listen=...`) are not threadctl's.
    parser.add_argument(
        "-m",
        dest="module",
        nargs=argparse.REMAINDER,
        metavar="MODULE [args...]",
        help="run a library module",
    )
    parser.add_argument("program", nargs=argparse.REMAINDER, help="script.py [args...]")
    args = parser.parse_args(argv)
    if not args.module and not args.program:
        parser.error("give a script to run, or -m MODULE")

    # sys.argv first: the server reports it as the program's command line.
    sys.argv = list(args.module or args.program)
    server = install(
        socket_path=args.socket,
        stop_on_signals=args.stop_on_signals,
        grace=args.grace,
        force_after_grace=args.force_after_grace,
    )
    if args.print_address:
        print(f"threadctl: control server at {server.address}", file=sys.stderr, flush=True)
    if args.module:
        runpy.run_module(args.module[0], run_name="__main__", alter_sys=True)
    else:
        # As `python script.py` does: the script's directory replaces the
        # current directory at the head of sys.path.
        sys.path[0] = os.path.dirname(os.path.abspath(args.program[0]))
        runpy.run_path(args.program[0], run_name="__main__")


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


if __name__ == "__main__":
    main()
