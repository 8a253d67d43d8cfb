"""The `threadctl` command: list the threads of a process and stop one.

Each subcommand is one function (its docstring is its help); fetching lives in
the client, rendering in _render. Exit codes: _exits.HELP (and `threadctl --help`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from threadctl.client import _exits, _render
from threadctl.client._client import DEFAULT_TIMEOUT, Client
from threadctl.client._credentials import TLS
from threadctl.client._discovery import resolve_address, running_servers
from threadctl.client._errors import InvalidArgument, ThreadNotFound
from threadctl.client._exits import Exit, exit_code_of, exit_code_of_stop
from threadctl.client._models import ThreadInfo
from threadctl.client._printable import printable
from threadctl.errors import ThreadctlError

ENV_TOKEN = "THREADCTL_TOKEN"  # noqa: S105 - the name of a variable
ENV_TOKEN_FILE = "THREADCTL_TOKEN_FILE"  # noqa: S105 - the name of a variable


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is cmd_stop and (args.tid is None) != args.all:
        parser.error("stop: give the TID of one thread, or --all")
    try:
        if args.command in _NEEDS_NO_SERVER:
            return int(args.command(args))
        if getattr(args, "attach", False):
            from threadctl.client import _attach_cli  # only now: it loads the host side

            return _attach_cli.run_one_shot(args.name, args)
        address = resolve_address(args.pid, args.target)
        with Client(address, timeout=args.timeout, token=_token(args), tls=_tls(args)) as client:
            return int(args.command(client, args))
    except ThreadctlError as error:
        print(f"threadctl: {printable(str(error))}", file=sys.stderr)  # text of the target
        return int(exit_code_of(error))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`threadctl list | head`): no traceback. Point
        # stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(Exit.SERVER_ERROR)


def cmd_list(client: Client, args: argparse.Namespace) -> Exit:
    """List the threads of the target process."""
    listing = client.list_threads(include_stacks=args.stacks)
    if args.sort != "none":
        listing.threads.sort(key=_SORT_KEYS[args.sort])
    if args.json:
        _print_json(listing.to_json())
    elif args.stacks:
        print("\n\n".join(_render.thread_details(t) for t in listing.threads))
    else:
        print(_render.thread_table(listing))
    return Exit.OK


def cmd_dump(client: Client, args: argparse.Namespace) -> Exit:
    """Print every thread with its Python stack (like py-spy dump)."""
    listing = client.list_threads(include_stacks=True)
    if args.json:
        _print_json(listing.to_json())
    else:
        print(_render.dump_text(listing))
    return Exit.OK


def cmd_top(client: Client, args: argparse.Namespace) -> Exit:
    """Live view of the threads, busiest first (q quits; prints snapshots without a terminal)."""
    from threadctl.client import _top  # only now: curses

    if args.iterations or not _top.stdout_is_terminal():
        _top.print_snapshots(client, args.interval, args.iterations)
    else:
        _top.run_interactive(client, args.interval)
    return Exit.OK


def cmd_ps(args: argparse.Namespace) -> Exit:
    """List this user's processes that run a threadctl server."""
    rows = []
    for server in running_servers():
        try:
            with Client(server.address, timeout=min(args.timeout, 2.0)) as client:
                listing = client.list_threads()
            program = " ".join(listing.process.argv) or "?"
            count = str(len(listing.threads))
        except ThreadctlError:
            program, count = "(not answering)", "?"
        rows.append((server.pid, program, count, server.address))
    if args.json:
        keys = ("pid", "program", "threads", "address")
        _print_json([dict(zip(keys, row, strict=True)) for row in rows])
    elif rows:
        print(_render.ps_table(rows))
    else:
        print("no threadctl process of this user is running", file=sys.stderr)
    return Exit.OK


def cmd_attach(args: argparse.Namespace) -> Exit:
    """Load the control server into a running process that never imported threadctl."""
    from threadctl.client import _attach_cli

    return Exit(
        _attach_cli.cmd_attach(args.target_pid, timeout=args.timeout, json_output=args.json)
    )


def cmd_detach(args: argparse.Namespace) -> Exit:
    """Close the control server that `threadctl attach` loaded into a process."""
    from threadctl.client import _attach_cli

    return Exit(
        _attach_cli.cmd_detach(args.target_pid, timeout=args.timeout, json_output=args.json)
    )


_NEEDS_NO_SERVER: set[Callable[[argparse.Namespace], Exit]] = {cmd_ps, cmd_attach, cmd_detach}


def cmd_show(client: Client, args: argparse.Namespace) -> Exit:
    """Show one thread with its Python stack."""
    seen = _resolve(client, args.tid)
    thread = client.get_thread(ident=seen.ident)
    if thread.identity != seen.identity:
        raise ThreadNotFound(f"thread {args.tid} exited while being looked up")
    if args.json:
        _print_json(thread.to_json())
    else:
        print(_render.thread_details(thread))
    return Exit.OK


def cmd_stop(client: Client, args: argparse.Namespace) -> Exit:
    """Stop one thread (or --all): cooperatively, or by force (--force, --grace)."""
    if args.all:
        return _stop_all(client, args)
    seen = _resolve(client, args.tid)
    result = client.stop_thread(
        ident=seen.ident,
        expected_identity=seen.identity,
        reason=args.reason,
        wait=args.wait,
        force=args.force or args.grace > 0,
        grace=args.grace,
        allow_main_thread=args.allow_main,
    )
    if args.json:
        _print_json(result.to_json())
    else:
        print(_render.stop_summary(result))
    return exit_code_of_stop(result.outcome, args.wait)


def _stop_all(client: Client, args: argparse.Namespace) -> Exit:
    result = client.stop_all_threads(
        grace=args.grace if args.grace > 0 else 5.0,
        force=args.force,
        wait=args.wait if args.wait > 0 else 1.0,
        reason=args.reason,
        include_main_thread=args.allow_main,
    )
    if args.json:
        _print_json(result.to_json())
    else:
        print(_render.stop_all_table(result))
    return Exit.OK if result.all_exited else Exit.STILL_RUNNING


def _resolve(client: Client, tid: int) -> ThreadInfo:
    """The thread a user means by TID: a kernel TID (as `top -H` shows) or an ident."""
    threads = client.list_threads().threads
    for match in (lambda t: t.native_id == tid, lambda t: t.ident == tid):
        found = [t for t in threads if match(t)]
        if found:
            return found[0]
    raise ThreadNotFound(f"no thread with TID or ident {tid} in the target process")


_SORT_KEYS: dict[str, Callable[[ThreadInfo], object]] = {
    "cpu": lambda t: -(t.cpu_seconds or 0.0),
    "tid": lambda t: t.native_id,
    "name": lambda t: t.name,
}


def _token(args: argparse.Namespace) -> str | None:
    """A bearer token from --token-file, $THREADCTL_TOKEN_FILE or $THREADCTL_TOKEN."""
    path = args.token_file or os.environ.get(ENV_TOKEN_FILE)
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as error:
            raise InvalidArgument(f"cannot read the token file {path}: {error.strerror}") from None
    return os.environ.get(ENV_TOKEN) or None


def _tls(args: argparse.Namespace) -> TLS | None:
    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise InvalidArgument("--tls-cert and --tls-key go together")
    try:
        return TLS.from_files(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    except OSError as error:
        raise InvalidArgument(f"cannot read {error.filename}: {error.strerror}") from None


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {value}")
    return value


def _interval(text: str) -> float:
    value = _seconds(text)
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be between 0.1 and 60 seconds, not {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    # Target options work before or after the command (`threadctl --pid 1 list`
    # and `threadctl list --pid 1`): the sub-parsers' copies default to
    # SUPPRESS so they only override what was given.
    def target_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
        def default(value: object) -> object:
            return value if defaults else argparse.SUPPRESS

        group = parser.add_argument_group("target (default: $THREADCTL_TARGET, else the only one)")
        choice = group.add_mutually_exclusive_group()
        choice.add_argument(
            "--pid",
            type=_positive_int,
            default=default(None),
            help="process to talk to (finds its control socket)",
        )
        choice.add_argument(
            "--target",
            metavar="ADDRESS",
            default=default(None),
            help="socket path or gRPC target (unix:PATH, HOST:PORT)",
        )
        group.add_argument(
            "--timeout",
            type=_seconds,
            default=default(DEFAULT_TIMEOUT),
            help=f"seconds per call (default {DEFAULT_TIMEOUT:g})",
        )
        auth = parser.add_argument_group(
            "credentials (a local socket needs none: its owner's token is read automatically)"
        )
        auth.add_argument(
            "--tls-ca",
            metavar="FILE",
            default=default(None),
            help="CA certificate that signed the server's (turns TLS on)",
        )
        auth.add_argument(
            "--tls-cert",
            metavar="FILE",
            default=default(None),
            help="client certificate, for mutual TLS",
        )
        auth.add_argument(
            "--tls-key",
            metavar="FILE",
            default=default(None),
            help="client private key, for mutual TLS",
        )
        auth.add_argument(
            "--tls-server-name",
            metavar="NAME",
            default=default(None),
            help="expected name in the server's certificate (default: the host)",
        )
        auth.add_argument(
            "--token-file",
            metavar="FILE",
            default=default(None),
            help=f"read a bearer token from FILE (or ${ENV_TOKEN_FILE}; ${ENV_TOKEN}"
            " holds one directly). Never on the command line: others can read it",
        )

    parser = argparse.ArgumentParser(
        prog="threadctl",
        description="List the threads of a running Python process and stop one of them.",
        epilog=_exits.HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target_options(parser, defaults=True)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(
        name: str, func: Callable[[Client, argparse.Namespace], Exit]
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=func.__doc__, description=func.__doc__)
        sub.set_defaults(command=func, name=name)
        target_options(sub, defaults=False)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    def attachable(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--attach",
            action="store_true",
            help="with --pid: run this one command inside a process that never imported"
            " threadctl, by injection (nothing stays running there)",
        )
        return sub

    listing = attachable(command("list", cmd_list))
    listing.add_argument("--stacks", action="store_true", help="include Python stacks")
    listing.add_argument(
        "--sort", choices=["none", *_SORT_KEYS], default="none", help="order (cpu: busiest first)"
    )

    attachable(command("dump", cmd_dump))

    top = command("top", cmd_top)
    top.add_argument(
        "--interval",
        type=_interval,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes (0.1 to 60, default 1)",
    )
    top.add_argument(
        "-n",
        "--iterations",
        type=_positive_int,
        default=0,
        metavar="N",
        help="print N snapshots and exit (the default without a terminal: forever)",
    )

    command("ps", cmd_ps)  # type: ignore[arg-type]
    for name, func in (("attach", cmd_attach), ("detach", cmd_detach)):
        sub = command(name, func)  # type: ignore[arg-type]
        sub.add_argument("target_pid", type=_positive_int, metavar="PID", help="the process")

    show = attachable(command("show", cmd_show))
    show.add_argument("tid", type=_positive_int, metavar="TID", help="kernel TID or ident")

    stop = attachable(command("stop", cmd_stop))
    stop.add_argument(
        "tid", type=_positive_int, metavar="TID", nargs="?", help="kernel TID or ident"
    )
    stop.add_argument(
        "--all",
        action="store_true",
        help="stop every thread but the main and the server's: cooperatively, wait --grace"
        " (default 5 s) for all, then force the rest only with --force; exit code 6 unless"
        " all exited",
    )
    stop.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for the thread to exit (exit code 6 if it did not)",
    )
    stop.add_argument(
        "--force",
        action="store_true",
        help="raise threadctl.ForcedStop in the thread (unwinds it through finally/with)",
    )
    stop.add_argument(
        "--grace",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="stop cooperatively, and force only if still alive after SECONDS (implies --force)",
    )
    stop.add_argument("--reason", default="", help="why (recorded in the audit log)")
    stop.add_argument("--allow-main", action="store_true", help="allow stopping the main thread")
    return parser


if __name__ == "__main__":
    sys.exit(main())
