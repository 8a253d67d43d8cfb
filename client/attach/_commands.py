"""`threadctl attach PID` and `threadctl detach PID`: load the control server
into a running process that never imported threadctl, and close it again.

Fetching only: each returns the job's answer as a dict (the CLI renders it)
and raises the client's errors for refusals.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from threadctl import _paths
from threadctl.client._errors import Refused, TargetNotFound
from threadctl.client.attach import _env, _inspect, _jobs
from threadctl.client.attach._oneshot import caller


def attach_process(pid: int, *, timeout: float) -> dict[str, Any]:
    """Start the control server in process `pid` unless one answers there.

    Returns:
        {"outcome": "started" or "already_serving", "address", "started_by",
        "pid", "elapsed_seconds", ...}.
    """
    started = time.monotonic()
    address = serving_address(pid)
    if address is not None:
        result = {"outcome": "already_serving", "address": address, "started_by": "unknown"}
    else:
        target = _inspect.inspect(pid)
        _env.require_same_interpreter(target)
        params = dict(caller("threadctl attach"), op="attach", **_env.environment())
        result = _jobs.run_job(target, params, started + timeout)["result"]
    return dict(result, pid=pid, elapsed_seconds=round(time.monotonic() - started, 3))


def detach_process(pid: int, *, timeout: float) -> dict[str, Any]:
    """Close the server that `threadctl attach` started in process `pid`.

    Raises:
        TargetNotFound: no threadctl server runs there.
        Refused: the program started its server itself (it holds a handle).
    """
    started = time.monotonic()
    target = _inspect.inspect(pid)
    params = dict(caller("threadctl detach"), op="detach")
    result: dict[str, Any] = _jobs.run_job(target, params, started + timeout)["result"]
    if result["outcome"] == "not_attached":
        raise TargetNotFound(f"process {pid} runs no threadctl server; nothing to detach")
    if result["outcome"] == "started_by_program":
        raise Refused(
            f"the threadctl server of process {pid} was started by the program itself"
            " (threadctl.install()); detach only closes one started by `threadctl attach`"
        )
    return dict(result, pid=pid)


def serving_address(pid: int) -> str | None:
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
