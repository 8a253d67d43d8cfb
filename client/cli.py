"""The `threadctl` command: list the threads of a process and stop one.

Each subcommand is one function (its docstring is its help) of a Backend (the
gRPC client, or with --attach a one-shot job inside the process: see
_backend); fetching lives in the backend, rendering in _render, and each
command renders and picks its exit code once, whichever backend answered.
Exit codes: _exits.HELP (and `threadctl --help`).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import pwd
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from threadctl._version import __version__
from threadctl.client import _completion, _exits, _render
from threadctl.client._backend import DEFAULT_TIMEOUT, Backend, SelectorFields
from threadctl.client._discovery import resolve_address, running_servers
from threadctl.client._errors import InvalidArgument, ThreadNotFound
from threadctl.client._exits import Exit, exit_code_of, exit_code_of_stop
from threadctl.client._models import ThreadInfo
from threadctl.client._printable import printable
from threadctl.errors import ThreadctlError

if TYPE_CHECKING:
    # grpc (about 45 ms of start-up) is imported only by commands that talk
    # to a server: the one-shot backend and --help never load it.
    from threadctl.client._client import Client
    from threadctl.client._credentials import TLS

ENV_TOKEN = "THREADCTL_TOKEN"  # noqa: S105 - the name of a variable
ENV_TOKEN_FILE = "THREADCTL_TOKEN_FILE"  # noqa: S105 - the name of a variable


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    _suggest_command(parser, argv)
    args = parser.parse_args(argv)
    if args.command is cmd_stop and (args.tid is None) != args.all:
        parser.error("stop: give the TID of one thread, or --all")
    try:
        code = _run(args)
        sys.stdout.flush()  # a full disk or a closed pipe fails here, not at exit
        return code
    except ThreadctlError as error:
        print(f"threadctl: {printable(str(error))}", file=sys.stderr)  # text of the target
        return int(exit_code_of(error))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`threadctl list | head`): no traceback, no
        # message (the reader asked for no more).
        _quiet_stdout()
        return int(Exit.ERROR)
    except OSError as error:  # stdout on a full disk, say: one line, no traceback
        _quiet_stdout()
        what = error.filename or "writing the output"
        print(f"threadctl: {what}: {error.strerror or error}", file=sys.stderr)
        return int(Exit.ERROR)


def _suggest_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """A mistyped command ends with a suggestion (`threadctl lsit`: did you
    mean list?) instead of argparse's list of every command."""
    commands = _completion.commands(parser)
    valued = set(_completion.options(parser, valued=True))
    words = iter(argv)
    for word in words:
        if word in valued:
            next(words, None)  # its value
        elif not word.startswith("-"):
            if word not in commands:
                close = difflib.get_close_matches(word, commands, n=1)
                hint = (
                    f"; did you mean {close[0]!r}?"
                    if close
                    else f" (commands: {', '.join(commands)})"
                )
                parser.error(f"unknown command {word!r}{hint}")
            return


def _run(args: argparse.Namespace) -> int:
    if args.command in _NEEDS_NO_SERVER:
        return int(args.command(args))
    backend = _backend(args)
    try:
        return int(args.command(backend, args))
    finally:
        backend.close()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what
    could not be written stays quiet."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _backend(args: argparse.Namespace) -> Backend:
    """The gRPC client of the target's server, or with --attach the one-shot backend."""
    if getattr(args, "attach", False):
        if args.pid is None:
            raise InvalidArgument("--attach needs --pid PID")
        from threadctl.client.attach._oneshot import OneShot  # only now: it loads the host side

        return OneShot(args.pid, timeout=args.timeout)
    from threadctl.client._client import Client

    address = resolve_address(args.pid, args.target)
    return Client(address, timeout=args.timeout, token=_token(args), tls=_tls(args))


def cmd_list(backend: Backend, args: argparse.Namespace) -> Exit:
    """List the threads of the target process."""
    listing = backend.list_threads(include_stacks=args.stacks)
    if args.sort != "none":
        listing.threads.sort(key=_SORT_KEYS[args.sort])
    if args.json:
        _print_json(listing.to_json())
    elif args.stacks:
        print("\n\n".join(_render.thread_details(t) for t in listing.threads))
    else:
        print(_render.thread_table(listing))
    return Exit.OK


def cmd_dump(backend: Backend, args: argparse.Namespace) -> Exit:
    """Print every thread with its Python stack (like py-spy dump), and under a
    thread that runs an asyncio loop its tasks' await chains."""
    listing = backend.list_threads(include_stacks=True)
    # Two listings, not one snapshot: a task may have finished in between.
    tasks = backend.list_tasks(include_stacks=True)
    if args.json:
        data, task_data = listing.to_json(), tasks.to_json()
        data.update(loops=task_data["loops"], tasks=task_data["tasks"])
        _print_json(data)
    else:
        print(_render.dump_text(listing, tasks))
    return Exit.OK


def cmd_top(backend: Backend, args: argparse.Namespace) -> Exit:
    """Live view of the threads, busiest first (q quits; prints snapshots without a
    terminal; --json: one object per line and interval)."""
    from threadctl.client import _top  # only now: curses
    from threadctl.client._client import Client

    client = backend
    if not isinstance(client, Client):  # top is not --attach-able: it needs a watch
        raise InvalidArgument("top needs a control server")
    if args.iterations or args.json or not _top.stdout_is_terminal():
        _top.print_snapshots(client, args.interval, args.iterations, args.json)
    else:
        _top.run_interactive(client, args.interval)
    return Exit.OK


def cmd_health(client: Client, args: argparse.Namespace) -> Exit:
    """Check the server's health: exit 0 if it serves, 3 if not (for exec probes)."""
    status = client.health(args.service)
    if args.json:
        _print_json({"service": args.service, "status": status})
    else:
        print(status)
    return Exit.OK if status == "SERVING" else Exit.UNREACHABLE


def cmd_tasks(backend: Backend, args: argparse.Namespace) -> Exit:
    """List the asyncio event loops and their pending tasks: what each awaits, and
    which loop is blocked by which task."""
    listing = backend.list_tasks(include_stacks=args.stacks, thread=args.thread or 0)
    if args.json:
        _print_json(listing.to_json())
    else:
        print(_render.tasks_text(listing, args.stacks))
    return Exit.OK


def cmd_cancel(client: Client, args: argparse.Namespace) -> Exit:
    """Cancel one asyncio task (Task.cancel on its own loop); --wait for it to finish;
    --force ends the task that blocks its loop."""
    result = client.cancel_task(args.task_id, reason=args.reason, wait=args.wait, force=args.force)
    if args.json:
        _print_json(result.to_json())
    else:
        print(_render.cancel_summary(result))
    if result.outcome == "moved_on":
        return Exit.TASK_ENDED
    finished = result.outcome in ("requested", "cancelled", "finished", "force_ended")
    return Exit.OK if finished else Exit.STILL_RUNNING


def cmd_history(client: Client, args: argparse.Namespace) -> Exit:
    """What threadctl's stops and cancels did, after the fact: the last 100 threads
    stopped and tasks cancelled, each with how it ended or that it runs on."""
    history = client.list_history()
    if args.json:
        _print_json(history.to_json())
    else:
        print(_render.history_table(history))
    return Exit.OK


def cmd_ps(args: argparse.Namespace) -> Exit:
    """List this user's processes that run a threadctl server (as root: every user's)."""
    from threadctl.client._client import Client

    rows = []
    for server in running_servers():
        try:
            with Client(server.address, timeout=min(args.timeout, 2.0)) as client:
                listing = client.list_threads()
            program = " ".join(listing.process.argv) or "?"
            count: int | None = len(listing.threads)
        except ThreadctlError:
            program, count = "(not answering)", None
        rows.append((server.pid, _user_name(server.uid), program, count, server.address))
    if args.json:
        keys = ("pid", "user", "program", "threads", "address")
        _print_json([dict(zip(keys, row, strict=True)) for row in rows])
    elif rows:
        print(_render.ps_table(rows))
    else:
        print("no threadctl process of this user is running", file=sys.stderr)
    return Exit.OK


def cmd_completion(args: argparse.Namespace) -> Exit:
    """Print a shell completion script: eval "$(threadctl completion bash)" (or zsh)."""
    print(_completion.script(_parser(), args.shell), end="")
    return Exit.OK


def _user_name(uid: int) -> str:
    if uid < 0:
        return "?"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def cmd_attach(args: argparse.Namespace) -> Exit:
    """Load the control server into a running process that never imported threadctl."""
    from threadctl.client.attach import _commands

    pid = args.target_pid
    result = _commands.attach_process(pid, timeout=args.timeout)
    if args.json:
        _print_json(result)
    elif result["outcome"] == "already_serving":
        print(f"process {pid} already serves threadctl at {result['address']}; no second server")
    else:
        hint = (
            f"; `threadctl list --pid {pid}` works now"
            if result["address"] == _commands.serving_address(pid)
            else f"; reach it with --target {result['address']}"
        )
        print(
            f"attached to process {pid} in {result['elapsed_seconds']:.2f} s: threadctl serves at"
            f" {result['address']}{hint}"
        )
    return Exit.OK


def cmd_detach(args: argparse.Namespace) -> Exit:
    """Close the control server that `threadctl attach` loaded into a process."""
    from threadctl.client.attach import _commands

    result = _commands.detach_process(args.target_pid, timeout=args.timeout)
    if args.json:
        _print_json(result)
    else:
        print(
            f"detached from process {args.target_pid}: its threadctl server is closed and"
            f" {result['address']} removed; the process keeps running"
        )
    return Exit.OK


_NEEDS_NO_SERVER: set[Callable[[argparse.Namespace], Exit]] = {
    cmd_ps,
    cmd_attach,
    cmd_detach,
    cmd_completion,
}


def cmd_show(backend: Backend, args: argparse.Namespace) -> Exit:
    """Show one thread with its Python stack."""
    thread = backend.get_thread(**_thread_ref(args.tid))
    if args.json:
        _print_json(thread.to_json())
    else:
        print(_render.thread_details(thread))
    return Exit.OK


def cmd_stop(backend: Backend, args: argparse.Namespace) -> Exit:
    """Stop one thread (or --all): cooperatively, or by force (--force, --grace)."""
    if args.all:
        return _stop_all(backend, args)
    wait, grace = args.wait or 0.0, args.grace or 0.0
    result = backend.stop_thread(
        **_thread_ref(args.tid),
        reason=args.reason,
        wait=wait,
        force=args.force or grace > 0,  # the one place where --grace implies --force
        grace=grace,
        allow_main_thread=args.allow_main,
    )
    if args.json:
        _print_json(result.to_json())
    else:
        print(_render.stop_summary(result))
    return exit_code_of_stop(result.outcome, wait)


def _stop_all(backend: Backend, args: argparse.Namespace) -> Exit:
    result = backend.stop_all_threads(
        grace=5.0 if args.grace is None else args.grace,
        force=args.force,
        wait=1.0 if args.wait is None else args.wait,
        reason=args.reason,
        include_main_thread=args.allow_main,
    )
    if args.json:
        _print_json(result.to_json())
    else:
        print(_render.stop_all_table(result))
    return Exit.OK if result.all_exited else Exit.STILL_RUNNING


def _thread_ref(text: str) -> SelectorFields:
    """How the user named the thread: a number is a kernel TID (as `top -H`
    shows) or else an ident, resolved by the server; anything else a name."""
    if not text.isdigit():
        return {"name": text}
    if int(text) >= 2**64:
        raise ThreadNotFound(f"no live thread with TID or ident {text} (larger than any id)")
    return {"tid_or_ident": int(text)}


_SORT_KEYS: dict[str, Callable[[ThreadInfo], float | str]] = {
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
    from threadctl.client._credentials import TLS

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


_THREAD_HELP = "kernel TID (as top -H shows), ident, or exact thread name"


def _thread_arg(text: str) -> str:
    """A thread as the user names it: a positive number, or a name."""
    if text.isdigit() and int(text) == 0:
        raise argparse.ArgumentTypeError("must be a positive number, not 0")
    if text.startswith("-") and text[1:].isdigit():
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    if not text or len(text) > 256:
        raise argparse.ArgumentTypeError("a thread name has 1 to 256 characters")
    return text


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


class _Version(argparse.Action):
    """--version: threadctl's version, the Python's, and grpcio's and
    protobuf's as installed (read from their metadata, not imported)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help", "")))

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        import importlib.metadata  # only here: it costs every other command ~5 ms

        installed = []
        for package in ("grpcio", "protobuf"):
            try:
                installed.append(f"{package} {importlib.metadata.version(package)}")
            except importlib.metadata.PackageNotFoundError:
                installed.append(f"{package} missing")
        python = f"Python {sys.version.split()[0]}"
        print(f"threadctl {__version__} ({python}, {', '.join(installed)})")
        parser.exit()


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
            "-p",
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
    parser.add_argument("--version", action=_Version, help="print the versions and exit")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(
        name: str,
        # (backend or Client, args), or (args) for those in _NEEDS_NO_SERVER
        func: Callable[..., Exit],
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

    health = command("health", cmd_health)
    health.add_argument(
        "--service",
        default="",
        metavar="NAME",
        help='the service to ask about (default "": the server as a whole)',
    )

    command("ps", cmd_ps)
    completion = command("completion", cmd_completion)
    completion.add_argument("shell", choices=["bash", "zsh"], help="the shell")
    for name, func in (("attach", cmd_attach), ("detach", cmd_detach)):
        sub = command(name, func)
        sub.add_argument("target_pid", type=_positive_int, metavar="PID", help="the process")

    show = attachable(command("show", cmd_show))
    show.add_argument("tid", type=_thread_arg, metavar="THREAD", help=_THREAD_HELP)

    tasks = attachable(command("tasks", cmd_tasks))
    tasks.add_argument("--stacks", action="store_true", help="include each task's await chain")
    tasks.add_argument(
        "--thread",
        type=_positive_int,
        default=None,
        metavar="TID",
        help="only the loop that this thread runs (a kernel TID or an ident)",
    )
    cancel = command("cancel", cmd_cancel)
    cancel.add_argument(
        "task_id", type=_positive_int, metavar="TASK", help="task id, as `threadctl tasks` shows"
    )
    cancel.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for the task to finish (exit code 6 if it did not)",
    )
    cancel.add_argument(
        "--force",
        action="store_true",
        help="for the task that blocks its loop (`tasks` shows BLOCKED): raise"
        " threadctl.ForcedStop in its code, ending that task only",
    )
    cancel.add_argument("--reason", default="", help="why (recorded in the audit log)")
    command("history", cmd_history)

    stop = attachable(command("stop", cmd_stop))
    stop.add_argument("tid", type=_thread_arg, metavar="THREAD", nargs="?", help=_THREAD_HELP)
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
        default=None,
        metavar="SECONDS",
        help="wait up to SECONDS for the thread to exit (exit code 6 if it did not; with --all:"
        " for the forced ones, default 1)",
    )
    stop.add_argument(
        "--force",
        action="store_true",
        help="raise threadctl.ForcedStop in the thread (unwinds it through finally/with)",
    )
    stop.add_argument(
        "--grace",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="stop cooperatively, and force only if still alive after SECONDS (implies --force;"
        " with --all: how long all get, default 5)",
    )
    stop.add_argument("--reason", default="", help="why (recorded in the audit log)")
    stop.add_argument("--allow-main", action="store_true", help="allow stopping the main thread")
    return parser


if __name__ == "__main__":
    sys.exit(main())
