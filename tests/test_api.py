"""The gRPC contract, spoken as another language's client would: raw stubs,
exact status codes, and the typed Python client on top."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from support import Host, connect
from threadctl.client import Client, Refused, ThreadNotFound
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc


@pytest.fixture
def stub(workers: Host) -> Iterator[pb_grpc.ThreadControlStub]:
    with connect(f"unix:{workers.ready['socket']}") as channel:
        yield pb_grpc.ThreadControlStub(channel)


def _code(call, request) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=10)
    return raised.value.code()


def _stop_state(stub: pb_grpc.ThreadControlStub, name: str) -> int:
    listing = stub.ListThreads(pb.ListThreadsRequest(), timeout=10)
    return next(t.stop_state for t in listing.threads if t.name == name)


def test_malformed_stop_requests_are_invalid_argument(
    stub: pb_grpc.ThreadControlStub, workers: Host
) -> None:
    coop = pb.ThreadSelector(native_id=workers.tid("coop-1"))
    malformed = [
        pb.StopThreadRequest(),  # no thread
        pb.StopThreadRequest(thread=pb.ThreadSelector(ident=0)),
        pb.StopThreadRequest(thread=pb.ThreadSelector(native_id=0)),
        pb.StopThreadRequest(thread=coop, mode=99),  # type: ignore[arg-type]
        pb.StopThreadRequest(thread=coop, wait_seconds=float("nan")),
        pb.StopThreadRequest(thread=coop, wait_seconds=-1),
        pb.StopThreadRequest(thread=coop, wait_seconds=3601),
        pb.StopThreadRequest(thread=coop, wait_seconds=float("inf")),
        pb.StopThreadRequest(thread=coop, reason="x" * 1025),
        pb.StopThreadRequest(thread=coop, reason="two\nlines"),
        pb.StopThreadRequest(thread=coop, expected_identity="not an identity"),
    ]
    for request in malformed:
        assert _code(stub.StopThread, request) == grpc.StatusCode.INVALID_ARGUMENT, request
    assert _stop_state(stub, "coop-1") == pb.STOP_STATE_NONE


def test_unknown_threads_are_not_found(stub: pb_grpc.ThreadControlStub) -> None:
    for selector in (pb.ThreadSelector(native_id=4194304), pb.ThreadSelector(ident=2**64 - 1)):
        assert (
            _code(stub.StopThread, pb.StopThreadRequest(thread=selector))
            == grpc.StatusCode.NOT_FOUND
        )
        assert (
            _code(stub.GetThread, pb.GetThreadRequest(thread=selector)) == grpc.StatusCode.NOT_FOUND
        )


def test_identity_mismatch_stops_nothing(stub: pb_grpc.ThreadControlStub, workers: Host) -> None:
    listing = stub.ListThreads(pb.ListThreadsRequest(), timeout=10)
    coop1 = next(t for t in listing.threads if t.name == "coop-1")
    coop2 = next(t for t in listing.threads if t.name == "coop-2")
    wrong = pb.StopThreadRequest(
        thread=pb.ThreadSelector(ident=coop1.ident), expected_identity=coop2.identity
    )

    assert _code(stub.StopThread, wrong) == grpc.StatusCode.FAILED_PRECONDITION
    assert _stop_state(stub, "coop-1") == pb.STOP_STATE_NONE

    right = pb.StopThreadRequest(
        thread=pb.ThreadSelector(ident=coop1.ident),
        expected_identity=coop1.identity,
        wait_seconds=10,
    )
    assert stub.StopThread(right, timeout=20).outcome == pb.STOP_OUTCOME_EXITED


def test_unspecified_mode_means_cooperative(stub: pb_grpc.ThreadControlStub, workers: Host) -> None:
    request = pb.StopThreadRequest(
        thread=pb.ThreadSelector(native_id=workers.tid("coop-2")), wait_seconds=10
    )

    response = stub.StopThread(request, timeout=20)

    assert response.outcome == pb.STOP_OUTCOME_EXITED
    assert response.thread.name == "coop-2"
    workers.expect("EXITED coop-2")


def test_wait_ends_before_the_callers_deadline(
    stub: pb_grpc.ThreadControlStub, workers: Host
) -> None:
    request = pb.StopThreadRequest(
        thread=pb.ThreadSelector(native_id=workers.tid("stubborn")), wait_seconds=3600
    )

    response = stub.StopThread(request, timeout=1.5)

    assert response.outcome == pb.STOP_OUTCOME_STILL_RUNNING
    assert response.waited_seconds < 1.5


def test_get_thread_includes_the_stack(stub: pb_grpc.ThreadControlStub, workers: Host) -> None:
    response = stub.GetThread(
        pb.GetThreadRequest(thread=pb.ThreadSelector(ident=workers.ident("coop-1"))), timeout=10
    )

    assert response.thread.native_id == workers.tid("coop-1")
    assert any(frame.function.endswith("cooperative") for frame in response.thread.stack)


def test_typed_client(workers: Host, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", env["XDG_RUNTIME_DIR"])
    with Client.for_pid(workers.pid) as client:
        listing = client.list_threads()
        assert listing.process.pid == workers.pid
        assert {"coop-1", "coop-2", "stubborn"} <= {t.name for t in listing.threads}

        result = client.stop_thread(native_id=workers.tid("coop-1"), wait=10, reason="typed")
        assert result.outcome == "exited"

        with pytest.raises(ThreadNotFound):
            client.stop_thread(native_id=workers.tid("coop-1"))
        serve = next(t for t in listing.threads if t.name == "threadctl-serve")
        with pytest.raises(Refused, match="control server"):
            client.stop_thread(ident=serve.ident)
