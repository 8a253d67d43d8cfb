"""`threadctl attach PID`, `threadctl detach PID`, and one-shot `--attach` commands.

The functions the CLI calls: cmd_attach, cmd_detach and run_one_shot. Each
returns the exit code (see _exits) and prints like the normal commands:
one-shot results become the same ThreadList / ThreadInfo / StopResult
objects, so tables and --json have the same shape; errors are one line on
stderr.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import threadctl
from threadctl import _control, _paths
from threadctl.client import _attach, _attach_env, _inspect, _oneshot_render
from threadctl.client._errors import InvalidArgument, Refused, TargetNotFound
from threadctl.client._exits import Exit, exit_code_of
from threadctl.errors import ThreadctlError

_CLIENT = Path(__file__).parent
# The job's source files, in order (the runner first, see _oneshot.py).
_ONE_SHOT = ("_oneshot.py", "_oneshot_force.py", "_oneshot_threadctl.py")
_SERVER = Path(threadctl.__file__).parent


def cmd_attach(pid: int, *, timeout: float, json_output: bool) -> int:
    """Load the control server into process `pid` (it never imported threadctl)."""
    return _guarded(lambda: _attach_server(pid, timeout, json_output))


def cmd_detach(pid: int, *, timeout: float, json_output: bool) -> int:
    """Close the control server `threadctl attach` started in process `pid`."""
    return _guarded(lambda: _detach_server(pid, timeout, json_output))


def run_one_shot(command: str, args: argparse.Namespace) -> int:
    """Run `list`, `show`, `dump` or `stop` once inside process `args.pid` by injection."""
    return _guarded(lambda: _one_shot(command, args))


def _attach_server(pid: int, timeout: float, json_output: bool) -> Exit:
    started = time.monotonic()
    address = _serving_address(pid)
    if address is not None:
        result = {"outcome": "already_serving", "address": address, "started_by": "unknown"}
    else:
        target = _inspect.inspect(pid)
        _attach_env.require_same_interpreter(target)
        params = dict(_caller("threadctl attach"), op="attach", **_attach_env.environment())
        source = _job_source(*_ONE_SHOT, "_attach_job.py")
        result = _attach.run_job(target, source, params, started + timeout)
    result = dict(result, pid=pid, elapsed_seconds=round(time.monotonic() - started, 3))
    if json_output:
        _oneshot_render.print_json(result)
    elif result["outcome"] == "already_serving":
        print(f"process {pid} already serves threadctl at {result['address']}; no second server")
    else:
        print(
            f"attached to process {pid} in {result['elapsed_seconds']:.2f} s: threadctl serves at"
            f" {result['address']}{_reach_hint(pid, result['address'])}"
        )
    return Exit.OK


def _detach_server(pid: int, timeout: float, json_output: bool) -> Exit:
    started = time.monotonic()
    target = _inspect.inspect(pid)
    params = dict(_caller("threadctl detach"), op="detach")
    source = _job_source(*_ONE_SHOT, "_attach_job.py")
    result = _attach.run_job(target, source, params, started + timeout)
    if result["outcome"] == "not_attached":
        raise TargetNotFound(f"process {pid} runs no threadctl server; nothing to detach")
    if result["outcome"] == "started_by_program":
        raise Refused(
            f"the threadctl server of process {pid} was started by the program itself"
            " (threadctl.install()); detach only closes one started by `threadctl attach`"
        )
    if json_output:
        _oneshot_render.print_json(dict(result, pid=pid))
    else:
        print(
            f"detached from process {pid}: its threadctl server is closed and"
            f" {result['address']} removed; the process keeps running"
        )
    return Exit.OK


def _one_shot(command: str, args: argparse.Namespace) -> Exit:
    if args.pid is None:
        raise InvalidArgument("--attach needs --pid PID")
    params: dict[str, Any] = dict(_caller("threadctl one-shot"), op=command, stacks=False)
    budget = args.timeout
    if command in ("list", "dump"):
        params.update(op="list", stacks=command == "dump" or bool(getattr(args, "stacks", False)))
    elif command == "show":
        params["tid"] = args.tid
    elif command == "stop":
        _control.validate(args.reason, args.wait, args.grace, args.force or args.grace > 0)
        params.update(
            tid=args.tid,
            force=bool(args.force),
            grace=args.grace,
            wait=args.wait,
            reason=args.reason,
            allow_main=bool(args.allow_main),
        )
        budget += args.wait + args.grace
    else:
        raise InvalidArgument(f"{command!r} cannot run with --attach")
    target = _inspect.inspect(args.pid)
    source = _job_source(*_ONE_SHOT, labels=True)
    result = _attach.run_job(target, source, params, time.monotonic() + budget)
    return Exit(_oneshot_render.print_result(command, args, result))


def _caller(via: str) -> dict[str, Any]:
    uid = os.getuid()
    sudo = os.environ.get("SUDO_UID") if uid == 0 else None
    who = f"uid={uid}" + (f" (sudo from uid {sudo})" if sudo and sudo.isdigit() else "")
    return {"caller": f"{who} pid={os.getpid()} ({via})", "caller_uid": uid}


def _job_source(*names: str, labels: bool = False) -> str:
    parts = [(_CLIENT / name).read_text() for name in names]
    if labels:  # lets the job tell what a blocked thread is calling, in what (see _oneshot)
        parts.append(f"BYTECODE_SOURCE = {(_SERVER / '_bytecode.py').read_text()!r}")
        parts.append(f"KNOWN_WAITS_SOURCE = {(_SERVER / '_core' / 'known_waits.py').read_text()!r}")
    return "\n\n".join([*parts, "run_job(JOB_DIR)\n"])


def _serving_address(pid: int) -> str | None:
    """The address of a server already answering on `pid`'s default socket."""
    path = _paths.find_socket(pid)
    if path is None:
        return None
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return None
    finally:
        probe.close()
    return f"unix:{path}"


def _reach_hint(pid: int, address: str) -> str:
    if address == f"unix:{_paths.find_socket(pid)}":
        return f"; `threadctl list --pid {pid}` works now"
    return f"; reach it with --target {address}"


def _guarded(action: Callable[[], int]) -> int:
    try:
        return int(action())
    except ThreadctlError as error:
        print("threadctl: " + " ".join(str(error).split()), file=sys.stderr)
        return int(exit_code_of(error))
    except KeyboardInterrupt:
        return 130
