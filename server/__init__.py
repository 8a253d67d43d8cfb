"""threadctl: list the threads of a running Python process and stop one of them.

Host side (this package): `install()` starts the control server; thread code
uses `stop_requested()`, `sleep()` and `check_stop()` so that a cooperative
stop is noticed. Client side: `threadctl.client` and the `threadctl` CLI.

Names are imported on first use (PEP 562): the CLI and client library import
this package too, and should not pay for the server (grpc's health and
reflection services, the registry, the signal and fork hooks) to list threads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from threadctl._version import __version__
from threadctl.errors import (
    AlreadyInstalled,
    IdentityMismatch,
    InvalidArgument,
    ProtectedThread,
    ServerStartFailed,
    SocketInUse,
    TaskStopped,
    ThreadctlError,
    ThreadNotFound,
    ThreadStopped,
    UnsafeRuntimeDirectory,
    UnsupportedRuntime,
)

if TYPE_CHECKING:
    from threadctl._consume import consume
    from threadctl._flag import check_stop, clear_stop, sleep, stop_requested
    from threadctl._force import CriticalSection, ForcedStop, critical
    from threadctl._hooks import StopHook, on_stop
    from threadctl._outcome import StopOutcome
    from threadctl._rpc._api import get_thread, list_threads, stop, stop_all
    from threadctl._rpc._auth import Role, TLSConfig, TokenGrant
    from threadctl._rpc._install import ControlServer, install
    from threadctl._waits import STOPPED, Stopped, get, wait, wait_for
    from threadctl.client._models import (
        StopAllResult,
        StopResult,
        ThreadInfo,
        ThreadList,
        ThreadReport,
    )

# public name -> module. Listings and stops answer with the client's types
# (threadctl.client), so in-process code and remote tools share them.
_LAZY = {
    **dict.fromkeys(("get_thread", "list_threads", "stop", "stop_all"), "threadctl._rpc._api"),
    **dict.fromkeys(("Role", "TLSConfig", "TokenGrant"), "threadctl._rpc._auth"),
    "consume": "threadctl._consume",
    **dict.fromkeys(("check_stop", "clear_stop", "sleep", "stop_requested"), "threadctl._flag"),
    **dict.fromkeys(("CriticalSection", "ForcedStop", "critical"), "threadctl._force"),
    **dict.fromkeys(("StopHook", "on_stop"), "threadctl._hooks"),
    **dict.fromkeys(("ControlServer", "install"), "threadctl._rpc._install"),
    "StopOutcome": "threadctl._outcome",
    **dict.fromkeys(("STOPPED", "Stopped", "get", "wait", "wait_for"), "threadctl._waits"),
    **dict.fromkeys(
        ("StopAllResult", "StopResult", "ThreadInfo", "ThreadList", "ThreadReport"),
        "threadctl.client._models",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'threadctl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "STOPPED",
    "AlreadyInstalled",
    "ControlServer",
    "CriticalSection",
    "ForcedStop",
    "IdentityMismatch",
    "InvalidArgument",
    "ProtectedThread",
    "Role",
    "ServerStartFailed",
    "SocketInUse",
    "StopAllResult",
    "StopHook",
    "StopOutcome",
    "StopResult",
    "Stopped",
    "TLSConfig",
    "TaskStopped",
    "ThreadInfo",
    "ThreadList",
    "ThreadNotFound",
    "ThreadReport",
    "ThreadStopped",
    "ThreadctlError",
    "TokenGrant",
    "UnsafeRuntimeDirectory",
    "UnsupportedRuntime",
    "__version__",
    "check_stop",
    "clear_stop",
    "consume",
    "critical",
    "get",
    "get_thread",
    "install",
    "list_threads",
    "on_stop",
    "sleep",
    "stop",
    "stop_all",
    "stop_requested",
    "wait",
    "wait_for",
]
