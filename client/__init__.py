"""threadctl.client: talk to a threadctl control server from another process.

from threadctl.client import Client
with Client.for_pid(1234) as client:
    for thread in client.list_threads().threads:
        print(thread.native_id, thread.name, thread.cpu_seconds)
    result = client.stop_thread(native_id=1240, wait=5, reason="runaway")
    print(result.outcome)  # StopOutcome.EXITED ("exited"), STILL_RUNNING or REQUESTED
"""

from threadctl._outcome import CancelOutcome, StopOutcome
from threadctl.client._client import DEFAULT_TIMEOUT, Client
from threadctl.client._credentials import TLS, open_channel, socket_token
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
