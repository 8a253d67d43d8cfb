"""Nobody can break it (issue 18): what a caller without credentials sends
cannot hang the host's close() or exit, grow its memory, or take the server
away from the callers who have credentials.

Each test starts a real host program and attacks it over its real sockets;
the host's own view (exit code, RSS, log lines) and an authorised caller's
view (status codes) decide.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from support import DEADLINE, Host, connect
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

StartHost = Callable[..., Host]
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
GARBAGE = b"\xff\xff\xff\xff"  # field 31, wire type 7: no protobuf message
NOT_A_MESSAGE = "the request is not a valid protobuf message for this method"


def _reflect(channel: grpc.Channel, payload: bytes) -> tuple[grpc.StatusCode, str]:
    """One ServerReflectionInfo call that sends `payload` as it is."""
    call = channel.stream_stream(REFLECTION)(iter([payload]), timeout=DEADLINE)
    try:
        for _ in call:
            pass
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def _list_services(channel: grpc.Channel) -> set[str]:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    return set(ProtoReflectionDescriptorDatabase(channel).get_services())


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _logs(host: Host) -> list[dict[str, str]]:
    """The LOG records the faulty host printed so far."""
    while not host.lines.empty():
        host.seen.append(host.lines.get_nowait())
    return [json.loads(line[4:]) for line in host.seen if line.startswith("LOG ")]


# ------------------------------------------------------- garbage to reflection


@pytest.mark.parametrize("ending", ["close", "exit"])
def test_undecodable_reflection_requests_get_invalid_argument_and_the_host_still_ends(
    start_host: StartHost, ending: str
) -> None:
    """Before the fix, one such call left grpcio's call state behind and the
    host's close() (explicit, or at interpreter exit) waited forever."""
    host = start_host("faulty.py")
    address = f"unix:{host.ready['socket']}"
    with grpc.insecure_channel(address) as channel:  # no credentials
        answers = [_reflect(channel, GARBAGE) for _ in range(20)]
        services = _list_services(channel)  # reflection still works after

    assert answers == [(grpc.StatusCode.INVALID_ARGUMENT, answers[0][1])] * 20
    assert answers[0][1].startswith(NOT_A_MESSAGE)
    assert "threadctl.v1.ThreadControl" in services
    host.send(ending)
    if ending == "close":
        host.expect("CLOSED")
        assert not Path(host.ready["socket"]).exists()
        assert host.stop() == 0
    else:
        assert host.proc.wait(timeout=DEADLINE) == 0
    assert not Path(host.ready["socket"]).exists()
    assert not [r for r in _logs(host) if r["level"] in ("WARNING", "ERROR")]


def test_thousands_of_undecodable_reflection_requests_leave_memory_flat(
    start_host: StartHost,
) -> None:
    """About 16 kB per call stayed behind in grpcio before (58 MB for 3,000)."""
    host = start_host("faulty.py")
    with grpc.insecure_channel(f"unix:{host.ready['socket']}") as channel:
        warm_up = {_reflect(channel, GARBAGE)[0] for _ in range(500)}
        before = _rss_kib(host.pid)
        codes = {_reflect(channel, GARBAGE)[0] for _ in range(3000)}
        after = _rss_kib(host.pid)

    assert warm_up == codes == {grpc.StatusCode.INVALID_ARGUMENT}
    assert after - before < 4096, f"RSS grew by {after - before} KiB over 3,000 calls"
    host.send("close")
    host.expect("CLOSED")


@pytest.mark.parametrize("ending", ["close", "exit"])
def test_close_is_bounded_whatever_grpc_does(start_host: StartHost, ending: str) -> None:
    """gRPC's stop never finishing (as after the reflection bug) costs close()
    its bound and a warning; the socket goes, and the host goes on or exits."""
    host = start_host("faulty.py")
    socket_path = Path(host.ready["socket"])
    with connect(str(socket_path)) as channel:
        listed = pb_grpc.ThreadControlStub(channel).ListThreads(
            pb.ListThreadsRequest(), timeout=DEADLINE
        )
    host.send("wedge")
    host.expect("WEDGED")

    host.send(ending)
    if ending == "close":
        host.expect("CLOSED")
        assert host.stop() == 0
    else:
        assert host.proc.wait(timeout=DEADLINE) == 0
    assert listed.threads
    assert not socket_path.exists()
    assert not socket_path.with_suffix(".token").exists()
    warnings = [r["message"] for r in _logs(host) if r["level"] == "WARNING"]
    bound = "2.0" if ending == "close" else "1.0"  # close(): grace 1 s; at exit: None
    assert warnings == [
        f"threadctl: gRPC did not finish stopping within {bound} s; the control socket is"
        " removed and gRPC's threads are left to end with the process"
    ]
