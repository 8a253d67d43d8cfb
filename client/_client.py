"""A small typed client for the ThreadControl service.

Every call has a deadline, and every grpc.RpcError becomes a ClientError
subclass with a sentence a person can act on, so callers (the CLI, ops
tooling) never handle raw gRPC errors.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import Message

from threadctl.client import _discovery
from threadctl.client._backend import DEFAULT_TIMEOUT, selector_fields
from threadctl.client._credentials import TLS, open_channel
from threadctl.client._errors import InvalidArgument, TargetUnavailable, error_for_status
from threadctl.client._history_models import History
from threadctl.client._local_socket import LocalSocket, open_local_socket
from threadctl.client._models import (
    StopAllResult,
    StopResult,
    ThreadInfo,
    ThreadList,
    WatchSample,
)
from threadctl.client._task_models import CancelResult, TaskList
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc


class Client:
    """Talks to one threadctl control server (a Backend, see _backend).

    Build it from a gRPC address (`unix:/path`, `host:port`) or with
    `Client.for_pid(pid)`; close it, or use it as a context manager.
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        token: str | None = None,
        tls: TLS | None = None,
    ) -> None:
        """
        Args:
            address: `unix:/path` or `host:port`.
            timeout: deadline of each call, in seconds.
            token: bearer token. For a Unix socket, None reads the owner's
                token from the file beside the socket; a token is only sent
                to a socket of its owner (see _local_socket).
            tls: TLS settings, for TCP targets.

        Raises:
            NotAllowed: a Unix socket failed the checks of _local_socket.
            TargetUnavailable: there is no socket at a Unix address.
        """
        self.address = address
        self._tls = tls is not None
        self.timeout = timeout
        self._local: LocalSocket | None = None
        target = address
        if address.startswith("unix:"):
            # Connect through the directory that was checked, not by path.
            self._local = open_local_socket(Path(address[len("unix:") :]), token=token)
            weakref.finalize(self, self._local.close)  # a Client never closed keeps no fd
            target, token = self._local.address, self._local.token
        self._channel = open_channel(target, token=token, tls=tls)
        self._stub = pb_grpc.ThreadControlStub(self._channel)

    @classmethod
    def for_pid(cls, pid: int, *, timeout: float = DEFAULT_TIMEOUT) -> Client:
        """A client for the server inside process `pid` (default socket)."""
        return cls(_discovery.address_for_pid(pid), timeout=timeout)

    def health(self, service: str = "") -> str:
        """The server's answer to the standard health check (grpc.health.v1)
        for `service` ("" for the server as a whole): "SERVING", or
        "NOT_SERVING" while it closes. Needs no credentials.

        Raises:
            InvalidArgument: the server has no service of that name.
        """
        # Imported here: the other commands need not load the health stubs.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        request = health_pb2.HealthCheckRequest(service=service)
        try:
            response = health_pb2_grpc.HealthStub(self._channel).Check(
                request, timeout=self.timeout
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise InvalidArgument(f"the server has no service named {service!r}") from None
            raise self._translate(error) from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    def list_threads(self, *, include_stacks: bool = False) -> ThreadList:
        """All live threads of the target process."""
        response = self._call(
            self._stub.ListThreads, pb.ListThreadsRequest(include_stacks=include_stacks)
        )
        return ThreadList.from_proto(response, include_stacks)

    def get_thread(
        self,
        *,
        ident: int | None = None,
        native_id: int | None = None,
        tid_or_ident: int | None = None,
        name: str | None = None,
    ) -> ThreadInfo:
        """One thread, with its stack: by ident, kernel TID, either (a TID
        first, as the CLI takes a number) or exact name."""
        selector = selector_fields(ident, native_id, tid_or_ident, name)
        request = pb.GetThreadRequest(thread=pb.ThreadSelector(**selector))
        return ThreadInfo.from_proto(self._call(self._stub.GetThread, request).thread, True)

    def stop_thread(
        self,
        *,
        ident: int | None = None,
        native_id: int | None = None,
        tid_or_ident: int | None = None,
        name: str | None = None,
        expected_identity: str = "",
        reason: str = "",
        wait: float = 0.0,
        force: bool = False,
        grace: float = 0.0,
        allow_main_thread: bool = False,
    ) -> StopResult:
        """Stop one thread.

        Cooperative unless `force`: then threadctl.ForcedStop is raised in the
        thread, after a cooperative `grace` period if one is given. With
        `wait`, wait up to that many seconds (after the grace) for the thread
        to exit. The thread is named as for get_thread(), and resolved by the
        server in the same call.
        """
        selector = selector_fields(ident, native_id, tid_or_ident, name)
        request = pb.StopThreadRequest(
            thread=pb.ThreadSelector(**selector),
            expected_identity=expected_identity,
            mode=pb.STOP_MODE_FORCE if force else pb.STOP_MODE_COOPERATIVE,
            reason=reason,
            wait_seconds=wait,
            grace_seconds=grace,
            allow_main_thread=allow_main_thread,
        )
        # The deadline covers the grace and the wait plus the normal call time.
        timeout = self.timeout + max(wait, 0) + max(grace, 0)
        return StopResult.from_proto(self._call(self._stub.StopThread, request, timeout))

    def stop_all_threads(
        self,
        *,
        grace: float = 5.0,
        force: bool = False,
        wait: float = 1.0,
        reason: str = "",
        include_main_thread: bool = False,
    ) -> StopAllResult:
        """Stop every thread that may be stopped: cooperatively, wait up to
        `grace` seconds, then force the rest if `force`."""
        request = pb.StopAllThreadsRequest(
            reason=reason,
            grace_seconds=grace,
            force=force,
            wait_seconds=wait if force else 0.0,
            include_main_thread=include_main_thread,
        )
        timeout = self.timeout + max(grace, 0) + (max(wait, 0) if force else 0)
        return StopAllResult.from_proto(self._call(self._stub.StopAllThreads, request, timeout))

    def watch_threads(
        self, *, interval: float = 1.0, include_stacks: bool = False
    ) -> Iterator[WatchSample]:
        """Samples of every thread each `interval` seconds, until the caller
        stops iterating (close the generator to cancel the call)."""
        call = self._stub.WatchThreads(
            pb.WatchThreadsRequest(interval_seconds=interval, include_stacks=include_stacks)
        )
        try:
            for message in call:
                yield WatchSample.from_proto(message, include_stacks)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                raise self._translate(error) from None
        finally:
            call.cancel()

    def list_tasks(self, *, include_stacks: bool = False, thread: int = 0) -> TaskList:
        """The asyncio loops of the target process and their pending tasks
        (only the loop run by `thread`, a TID or ident, if given)."""
        request = pb.ListTasksRequest(include_stacks=include_stacks, thread=thread)
        return TaskList.from_proto(self._call(self._stub.ListTasks, request), include_stacks)

    def list_history(self) -> History:
        """What threadctl's stops and cancels did in the target process: the
        last 100, oldest first, each with how its thread or task ended."""
        response = self._call(self._stub.ListHistory, pb.ListHistoryRequest())
        return History.from_proto(response)

    def cancel_task(
        self, task_id: int, *, reason: str = "", wait: float = 0.0, force: bool = False
    ) -> CancelResult:
        """Cancel one asyncio task (Task.cancel on its loop); with `wait`,
        wait up to that many seconds for it to finish. With `force`, end the
        task its loop runs now by raising threadctl.ForcedStop in its code."""
        request = pb.CancelTaskRequest(
            task_id=task_id, reason=reason, wait_seconds=wait, force=force
        )
        timeout = self.timeout + max(wait, 0)
        return CancelResult.from_proto(self._call(self._stub.CancelTask, request, timeout))

    def close(self) -> None:
        self._channel.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self, method: Callable[..., Any], request: Message, timeout: float | None = None
    ) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise self._translate(error) from None

    def _translate(self, error: grpc.RpcError) -> Exception:
        code = error.code()
        details = error.details() or code.name
        if code == grpc.StatusCode.UNAVAILABLE:
            hint = _TLS_HINT if self._tls else ""
            return TargetUnavailable(
                f"cannot reach the threadctl server at {self.address}: {details}{hint}"
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return TargetUnavailable(
                f"the threadctl server at {self.address} did not answer in time"
            )
        return error_for_status(code.name, details)


# gRPC reports a failed TLS handshake as an unreachable server ("Socket
# closed", "Ssl handshake failed"), whichever side refused.
_TLS_HINT = (
    " (if the TLS handshake failed: the CA of --tls-ca must have signed the server's"
    " certificate, for the name the server is reached by or --tls-server-name; a server that"
    " requires client certificates needs --tls-cert and --tls-key from the CA it trusts)"
)
