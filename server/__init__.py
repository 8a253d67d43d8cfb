"""threadctl: list the threads of a running Python process and stop one of them.

Host side (this package): `install()` starts the control server; thread code
uses `stop_requested()`, `sleep()` and `check_stop()` so that a cooperative
stop is noticed. Client side: `threadctl.client` and the `threadctl` CLI.
"""

from threadctl._auth import Role, TLSConfig, TokenGrant
from threadctl._consume import consume
from threadctl._control import StopOutcome, StopResult, get_thread, stop
from threadctl._flag import check_stop, clear_stop, sleep, stop_requested
from threadctl._force import CriticalSection, ForcedStop, critical
from threadctl._hooks import StopHook, on_stop
from threadctl._install import ControlServer, install
from threadctl._snapshot import ThreadSnapshot, snapshot_all
from threadctl._stop_all import StopAllResult, ThreadReport, stop_all
from threadctl._version import __version__
from threadctl._waits import STOPPED, get, wait, wait_for
from threadctl.errors import (
    AlreadyInstalled,
    IdentityMismatch,
    InvalidArgument,
    ProtectedThread,
    SocketInUse,
    ThreadctlError,
    ThreadNotFound,
    ThreadStopped,
    UnsafeRuntimeDirectory,
)

list_threads = snapshot_all

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
    "SocketInUse",
    "StopAllResult",
    "StopHook",
    "StopOutcome",
    "StopResult",
    "TLSConfig",
    "ThreadNotFound",
    "ThreadReport",
    "ThreadSnapshot",
    "ThreadStopped",
    "ThreadctlError",
    "TokenGrant",
    "UnsafeRuntimeDirectory",
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
