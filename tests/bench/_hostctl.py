"""Driving the benchmark host: commands over its stdin, warm gRPC channels to it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from support import Host
from threadctl.client import socket_token
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

HOST_SCRIPT = Path(__file__).parent / "hosts" / "bench_host.py"
# Parking 10,000 threads or listing them with stacks takes seconds on 2 cores.
COMMAND_DEADLINE = 180.0
ECHO_PAYLOAD = b"\x08\x01"  # as long as a ListThreadsRequest with stacks
RPC_DEADLINE = 120.0


class BenchHost:
    """One running bench_host.py; `ask()` sends a command and returns its answer."""

    def __init__(self, env: dict[str, str]) -> None:
        self.host = Host([sys.executable, str(HOST_SCRIPT)], env)
        self.pid = self.host.pid

    def ask(self, command: str, answer: str) -> dict[str, Any]:
        self.host.send(command)
        return self.expect(answer)

    def expect(self, answer: str) -> dict[str, Any]:
        line = self.host.expect(answer + " ", timeout=COMMAND_DEADLINE)
        return json.loads(line[len(answer) + 1 :])

    def stop(self) -> None:
        self.host.stop()


class Connection:
    """Warm channels to one host: threadctl's service and, if given, the bare echo.

    Calls carry the owner's token the way the CLI sends it (read with
    threadctl.client.socket_token), as per-call metadata rather than through
    threadctl.client.open_channel, because that channel keeps gRPC's 4 MiB
    receive limit and a listing of 10,000 threads with stacks is larger.
    """

    def __init__(self, address: str, echo: dict[str, str] | None = None) -> None:
        token = socket_token(Path(address.removeprefix("unix:")))
        self._metadata = (
            (("authorization", f"Bearer {token}"), ("x-threadctl-uid", str(os.geteuid())))
            if token
            else ()
        )
        options = [("grpc.max_receive_message_length", -1)]
        self._channels = [grpc.insecure_channel(address, options=options)]
        self._stub = pb_grpc.ThreadControlStub(self._channels[0])
        if echo is not None:
            self.echo_address, self.echo_method = echo["address"], echo["method"]
            self._channels.append(grpc.insecure_channel(self.echo_address, options=options))
            self._echo = self._channels[1].unary_unary(self.echo_method)

    def list_threads(self, stacks: bool = False) -> pb.ListThreadsResponse:
        request = pb.ListThreadsRequest(include_stacks=stacks)
        return self._stub.ListThreads(request, timeout=RPC_DEADLINE, metadata=self._metadata)

    def list_tasks(self) -> pb.ListTasksResponse:
        request = pb.ListTasksRequest()
        return self._stub.ListTasks(request, timeout=RPC_DEADLINE, metadata=self._metadata)

    def get_thread(self, ident: int) -> pb.GetThreadResponse:
        request = pb.GetThreadRequest(thread=pb.ThreadSelector(ident=ident))
        return self._stub.GetThread(request, timeout=RPC_DEADLINE, metadata=self._metadata)

    def first_watch_message(self, interval: float) -> pb.WatchThreadsResponse:
        """Open WatchThreads, take its first message, cancel: one message's cost."""
        request = pb.WatchThreadsRequest(interval_seconds=interval)
        stream = self._stub.WatchThreads(request, timeout=RPC_DEADLINE, metadata=self._metadata)
        try:
            return next(stream)
        finally:
            stream.cancel()

    def stop_thread(self, request: pb.StopThreadRequest) -> pb.StopThreadResponse:
        return self._stub.StopThread(request, timeout=RPC_DEADLINE, metadata=self._metadata)

    def echo(self) -> bytes:
        return self._echo(ECHO_PAYLOAD, timeout=RPC_DEADLINE)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(host: BenchHost) -> Connection:
    """Install threadctl and the echo server in `host` and connect to both."""
    address = host.ask("install", "INSTALLED")["address"]
    return Connection(address, host.ask("echo", "ECHO"))
