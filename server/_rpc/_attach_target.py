"""`threadctl attach` / `threadctl detach`, the part that runs inside the target.

The attach job (client/_attach_job.py) imports threadctl into a process that
never did and calls attach(); detach() closes only a server that attach
started, since the program holds its own handle to one it started itself.
Both write an audit record naming the caller, like every control action.
They run on the agent's thread; the server keeps running on its own threads.
"""

from __future__ import annotations

import os
import threading

from threadctl import _audit
from threadctl._rpc import _install
from threadctl._version import __version__

_lock = threading.Lock()
_attached: _install.ControlServer | None = None


def attach(*, caller: str, caller_uid: int) -> dict[str, object]:
    """Start the control server on the default socket unless one is running.

    Returns:
        {"outcome": "started" or "already_serving", "address", "started_by":
        "attach" or "program", "threadctl_version"}.

    Raises:
        whatever install() raises (SocketInUse, UnsafeRuntimeDirectory).
    """
    global _attached
    with _lock:
        running = _running()
        if running is None:
            running = _attached = _install.install(exist_ok=True)
            outcome = "started"
        else:
            outcome = "already_serving"
        started_by = "attach" if running is _attached else "program"
    _audit._emit(
        {
            "action": "attach",
            "caller": caller,
            "caller_uid": caller_uid,
            "outcome": outcome,
            "address": running.address,
        }
    )
    return {
        "outcome": outcome,
        "address": running.address,
        "started_by": started_by,
        "threadctl_version": __version__,
    }


def detach(*, caller: str, caller_uid: int) -> dict[str, object]:
    """Close the server that attach() started and remove its socket.

    Returns:
        {"outcome": "detached", "address"}, or outcome "not_attached" (no
        server runs) or "started_by_program" (left alone), with nothing done.
    """
    global _attached
    with _lock:
        running = _running()
        if running is None:
            return {"outcome": "not_attached", "address": ""}
        if running is not _attached:
            return {"outcome": "started_by_program", "address": running.address}
        _attached = None
    running.close()
    _audit._emit(
        {
            "action": "detach",
            "caller": caller,
            "caller_uid": caller_uid,
            "outcome": "detached",
            "address": running.address,
        }
    )
    return {"outcome": "detached", "address": running.address}


def _running() -> _install.ControlServer | None:
    server = _install._installed
    return server if server is not None and server.pid == os.getpid() else None
