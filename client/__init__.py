"""threadctl.client: talk to a threadctl control server from another process.

from threadctl.client import Client
with Client.for_pid(1234) as client:
    for thread in client.list_threads().threads:
        print(thread.native_id, thread.name, thread.cpu_seconds)
    result = client.stop_thread(native_id=1240, wait=5, reason="runaway")
    print(result.outcome)  # StopOutcome.EXITED ("exited"), STILL_RUNNING or REQUESTED
"""

import importlib
from typing import TYPE_CHECKING

from threadctl._outcome import CancelOutcome, StopOutcome
from threadctl.client._backend import DEFAULT_TIMEOUT
from threadctl.client._discovery import RunningServer, resolve_address, running_servers
from threadctl.client._errors import (
    ClientError,
    InvalidArgument,
    NotAllowed,
    Refused,
    ServerError,
    TargetNotFound,
    TargetUnavailable,
    ThreadNotFound,
)
from threadctl.client._history_models import History, HistoryEntry
from threadctl.client._models import (
    Frame,
    ProcessInfo,
    StopAllResult,
    StopResult,
    ThreadInfo,
    ThreadList,
    ThreadReport,
    WatchSample,
)
from threadctl.client._task_models import CancelResult, LoopInfo, TaskInfo, TaskList

if TYPE_CHECKING:
    from threadctl.client._client import Client
    from threadctl.client._credentials import TLS, open_channel, socket_token

# The names whose modules import grpc (about 45 ms): loaded on first use, so
# that a command that never talks gRPC (one-shot `--attach`, `--help`) never
# pays for it.
_NEEDS_GRPC = {
    "Client": "_client",
    "TLS": "_credentials",
    "open_channel": "_credentials",
    "socket_token": "_credentials",
}


def __getattr__(name: str) -> object:
    module = _NEEDS_GRPC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_TIMEOUT",
    "TLS",
    "CancelOutcome",
    "CancelResult",
    "Client",
    "ClientError",
    "Frame",
    "History",
    "HistoryEntry",
    "InvalidArgument",
    "LoopInfo",
    "NotAllowed",
    "ProcessInfo",
    "Refused",
    "RunningServer",
    "ServerError",
    "StopAllResult",
    "StopOutcome",
    "StopResult",
    "TargetNotFound",
    "TargetUnavailable",
    "TaskInfo",
    "TaskList",
    "ThreadInfo",
    "ThreadList",
    "ThreadNotFound",
    "ThreadReport",
    "WatchSample",
    "open_channel",
    "resolve_address",
    "running_servers",
    "socket_token",
]
