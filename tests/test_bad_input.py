"""Bad input: every malformed, impossible or hostile request gets a precise
status code and a clear message, stops nothing, and leaves the server serving.

Each case runs against a live host (tests/hosts/workers.py). Before and after
it, the stop state of every thread is recorded and compared, and the standard
health service must answer SERVING. `pytest -s` prints the table of inputs and
the status each got.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support import DEADLINE, Host, connect, run_cli
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

SERVICE = "/threadctl.v1.ThreadControl/"
MAX_RECEIVE = 64 * 1024  # the server's receive limit (threadctl._rpc._install.MAX_MESSAGE_BYTES)
BEYOND_PID_MAX = 2**32 - 1  # Linux pid_max is at most 2**22: no thread has this TID
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
NOT_A_MESSAGE = "the request is not a valid protobuf message for this method"


@dataclass(frozen=True)
class Case:
    """One bad input: what is sent (a message, or raw bytes for what a message
    cannot express), and the status and message expected back."""

    label: str
    method: str
    request: Any  # a protobuf message, or bytes sent as they are
    code: grpc.StatusCode
    message: str  # regular expression the details must match


def _stop(**fields: Any) -> pb.StopThreadRequest:
    return pb.StopThreadRequest(**fields)


def _varint(value: int) -> bytes:
    """Protobuf varint encoding of `value` taken modulo 2**70 (10 bytes at most
    for 64-bit values), so values a message refuses can still be put on the wire."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _raw_stop_selector(field: int, value: int) -> bytes:
    """A StopThreadRequest whose selector carries `value` in `field` (1 ident,
    2 native_id), encoded by hand."""
    selector = bytes([field << 3]) + _varint(value)
    return b"\x0a" + _varint(len(selector)) + selector


NO_SELECTOR = "non-zero ident, native_id or tid_or_ident, or a name"


def _cases(workers: Host) -> list[Case]:
    coop = pb.ThreadSelector(native_id=workers.tid("coop-1"))
    main = pb.ThreadSelector(native_id=workers.tid("MainThread"))
    invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    refused = grpc.StatusCode.FAILED_PRECONDITION
    valid_bytes = _stop(thread=coop).SerializeToString()
    bad_utf8_reason = valid_bytes + b"\x22\x02\xff\xfe"  # field 4 (reason): not UTF-8
    stop_cases = [
        Case("no thread selector", "StopThread", _stop(), invalid, NO_SELECTOR),
        Case("ident 0", "StopThread", _stop(thread=pb.ThreadSelector(ident=0)), invalid,
             NO_SELECTOR),
        Case("native_id 0", "StopThread", _stop(thread=pb.ThreadSelector(native_id=0)), invalid,
             NO_SELECTOR),
        Case("ident -1 (int64 varint on the wire, read as uint64)", "StopThread",
             _raw_stop_selector(1, -1 % 2**64), not_found,
             f"no live thread with ident {2**64 - 1}"),
        Case("native_id -1 (int64 varint on the wire, read as uint32)", "StopThread",
             _raw_stop_selector(2, -1 % 2**64), not_found,
             f"no live thread with native id {2**32 - 1}"),
        Case("ident 2**64-1 (max uint64)", "StopThread",
             _stop(thread=pb.ThreadSelector(ident=2**64 - 1)), not_found,
             f"no live thread with ident {2**64 - 1}"),
        Case("ident 2**64 (10-byte varint, wraps to 0)", "StopThread",
             _raw_stop_selector(1, 2**64), invalid, NO_SELECTOR),
        Case("unknown TID (native_id 2**32-1, beyond pid_max)", "StopThread",
             _stop(thread=pb.ThreadSelector(native_id=BEYOND_PID_MAX)), not_found,
             f"no live thread with native id {BEYOND_PID_MAX}"),
        Case("unknown ident 8", "StopThread", _stop(thread=pb.ThreadSelector(ident=8)),
             not_found, "no live thread with ident 8"),
        Case("TID of another process (the test runner's)", "StopThread",
             _stop(thread=pb.ThreadSelector(native_id=threading.get_native_id())), not_found,
             f"no live thread with native id {threading.get_native_id()}"),
        Case("mode 99 (unknown enum value)", "StopThread", _stop(thread=coop, mode=99), invalid,
             "unknown stop mode 99"),
        Case("mode -1 (unknown enum value)", "StopThread", _stop(thread=coop, mode=-1), invalid,
             "unknown stop mode -1"),
        Case("reason of 1025 characters", "StopThread", _stop(thread=coop, reason="r" * 1025),
             invalid, "reason is 1025 characters; at most 1024"),
        Case("reason with a newline", "StopThread", _stop(thread=coop, reason="one\ntwo"), invalid,
             "reason must not contain control characters"),
        Case("reason that is not UTF-8", "StopThread", bad_utf8_reason, invalid,
             NOT_A_MESSAGE),
        Case("wait NaN", "StopThread", _stop(thread=coop, wait_seconds=math.nan), invalid,
             "wait must be between 0 and 3600 seconds, not nan"),
        Case("wait -1", "StopThread", _stop(thread=coop, wait_seconds=-1), invalid,
             "wait must be between 0 and 3600 seconds, not -1"),
        Case("wait +inf", "StopThread", _stop(thread=coop, wait_seconds=math.inf), invalid,
             "wait must be between 0 and 3600 seconds, not inf"),
        Case("wait 3601", "StopThread", _stop(thread=coop, wait_seconds=3601), invalid,
             "wait must be between 0 and 3600 seconds, not 3601"),
        Case("wait 1e308", "StopThread", _stop(thread=coop, wait_seconds=1e308), invalid,
             "wait must be between 0 and 3600 seconds, not 1e\\+308"),
        Case("grace NaN (forced)", "StopThread",
             _stop(thread=coop, mode=pb.STOP_MODE_FORCE, grace_seconds=math.nan), invalid,
             "grace must be between 0 and 3600 seconds, not nan"),
        Case("grace -0.5 (forced)", "StopThread",
             _stop(thread=coop, mode=pb.STOP_MODE_FORCE, grace_seconds=-0.5), invalid,
             "grace must be between 0 and 3600 seconds, not -0.5"),
        Case("grace 1e9 (forced)", "StopThread",
             _stop(thread=coop, mode=pb.STOP_MODE_FORCE, grace_seconds=1e9), invalid,
             "grace must be between 0 and 3600 seconds"),
        Case("grace without force", "StopThread", _stop(thread=coop, grace_seconds=1), invalid,
             "grace period only applies to a forced stop"),
        Case("expected_identity 'not an identity'", "StopThread",
             _stop(thread=coop, expected_identity="not an identity"), invalid,
             "malformed expected_identity 'not an identity'"),
        Case("expected_identity in upper case '1.DEADBEEF'", "StopThread",
             _stop(thread=coop, expected_identity="1.DEADBEEF"), invalid,
             "malformed expected_identity"),
        Case("expected_identity of 10,000 characters", "StopThread",
             _stop(thread=coop, expected_identity="7" * 10_000), invalid,
             "malformed expected_identity '7{40}' \\(use ThreadRecord.identity"),
        Case("well-formed identity of no thread ('1.00000000')", "StopThread",
             _stop(thread=coop, expected_identity="1.00000000"), refused,
             "the id was reused by another thread; nothing was stopped"),
        Case("main thread without allow_main_thread", "StopThread", _stop(thread=main), refused,
             "the main thread is protected"),
        Case("request of 70,000 bytes (reason)", "StopThread",
             _stop(thread=coop, reason="r" * 70_000), grpc.StatusCode.RESOURCE_EXHAUSTED,
             "larger than max"),
        Case("request of 1 MiB (unknown field)", "ListThreads",
             b"\xfa\x3f" + _varint(2**20) + b"x" * 2**20, grpc.StatusCode.RESOURCE_EXHAUSTED,
             "larger than max"),
        Case("bytes that are no protobuf message", "StopThread", b"\xff\xff\xff\xff", invalid,
             NOT_A_MESSAGE),
        Case("truncated message", "StopThread", valid_bytes[:-1], invalid,
             NOT_A_MESSAGE),
    ]  # fmt: skip
    other_cases = [
        Case("GetThread ident 0", "GetThread", pb.GetThreadRequest(), invalid,
             NO_SELECTOR),
        Case("GetThread unknown TID", "GetThread",
             pb.GetThreadRequest(thread=pb.ThreadSelector(native_id=BEYOND_PID_MAX)), not_found,
             f"no live thread with native id {BEYOND_PID_MAX}"),
        Case("WatchThreads interval NaN", "WatchThreads",
             pb.WatchThreadsRequest(interval_seconds=math.nan), invalid,
             "interval_seconds must be between 0.1 and 60, not nan"),
        Case("WatchThreads interval -1", "WatchThreads",
             pb.WatchThreadsRequest(interval_seconds=-1), invalid,
             "interval_seconds must be between 0.1 and 60, not -1"),
        Case("WatchThreads interval 1e9", "WatchThreads",
             pb.WatchThreadsRequest(interval_seconds=1e9), invalid,
             "interval_seconds must be between 0.1 and 60"),
        Case("StopAllThreads grace NaN", "StopAllThreads",
             pb.StopAllThreadsRequest(grace_seconds=math.nan), invalid,
             "grace must be between 0 and 3600 seconds, not nan"),
        Case("StopAllThreads wait -1 (forced)", "StopAllThreads",
             pb.StopAllThreadsRequest(force=True, wait_seconds=-1), invalid,
             "wait must be between 0 and 3600 seconds, not -1"),
        Case("StopAllThreads reason of 5000 characters", "StopAllThreads",
             pb.StopAllThreadsRequest(reason="r" * 5000), invalid,
             "reason is 5000 characters; at most 1024"),
        Case("StopAllThreads reason with ESC", "StopAllThreads",
             pb.StopAllThreadsRequest(reason="\x1b[2J"), invalid,
             "reason must not contain control characters"),
        Case("CancelTask task_id 0", "CancelTask", pb.CancelTaskRequest(), invalid,
             "task_id: set the id of a listed task"),
        Case("CancelTask unknown task", "CancelTask", pb.CancelTaskRequest(task_id=2**63),
             not_found, f"no pending task {2**63}"),
        Case("CancelTask wait NaN", "CancelTask",
             pb.CancelTaskRequest(task_id=1, wait_seconds=math.nan), invalid,
             "wait must be between 0 and 3600 seconds, not nan"),
        Case("CancelTask reason with ESC", "CancelTask",
             pb.CancelTaskRequest(task_id=1, reason="\x1b[2J"), invalid,
             "reason must not contain control characters"),
        Case("ListTasks of a thread without a loop", "ListTasks",
             pb.ListTasksRequest(thread=BEYOND_PID_MAX), not_found,
             f"no event loop with pending tasks runs in thread {BEYOND_PID_MAX}"),
        Case("unknown method", "Nope", b"", grpc.StatusCode.UNIMPLEMENTED, "Method not found"),
    ]  # fmt: skip
    return stop_cases + other_cases


@pytest.fixture
def channel(workers: Host) -> Iterator[grpc.Channel]:
    with connect(f"unix:{workers.ready['socket']}") as opened:
        yield opened


def _stop_states(channel: grpc.Channel) -> dict[str, int]:
    listing = pb_grpc.ThreadControlStub(channel).ListThreads(
        pb.ListThreadsRequest(), timeout=DEADLINE
    )
    return {t.identity: t.stop_state for t in listing.threads if t.identity}


def _newly_stopped(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Threads whose stop state changed, or that appeared already stopped, or
    that vanished (new threads, such as another RPC worker, are fine)."""
    changed = {k: v for k, v in after.items() if before.get(k, pb.STOP_STATE_NONE) != v}
    gone = {k: -1 for k in before if k not in after}
    return changed | gone


def _health(channel: grpc.Channel, timeout: float = DEADLINE) -> int:
    return (
        health_pb2_grpc.HealthStub(channel)
        .Check(health_pb2.HealthCheckRequest(service="threadctl.v1.ThreadControl"), timeout=timeout)
        .status
    )


def _send(channel: grpc.Channel, case: Case) -> tuple[grpc.StatusCode, str]:
    """Send `case` as it is (bytes are not re-encoded); the status and details back."""
    raw = isinstance(case.request, bytes)
    serializer = None if raw else type(case.request).SerializeToString
    method = SERVICE + case.method
    try:
        if case.method == "WatchThreads":
            stream = channel.unary_stream(method, request_serializer=serializer)
            call = stream(case.request, timeout=DEADLINE)
            next(call)  # a refused watch fails on its first message
            call.cancel()
            return grpc.StatusCode.OK, "a stream message"
        else:
            channel.unary_unary(method, request_serializer=serializer)(
                case.request, timeout=DEADLINE
            )
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def _table(rows: list[tuple[str, str, str]], headers: tuple[str, str, str]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(3)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def test_every_bad_request_gets_its_status_and_stops_nothing(
    workers: Host, channel: grpc.Channel
) -> None:
    cases = _cases(workers)
    rows, wrong = [], []
    for case in cases:
        before = _stop_states(channel)
        code, details = _send(channel, case)
        after = _stop_states(channel)
        serving = _health(channel)
        rows.append((case.label, code.name, details))
        if code != case.code or not re.search(case.message, details):
            wrong.append(f"{case.label}: got {code.name} {details!r}, expected {case.code.name}")
        if _newly_stopped(before, after):
            wrong.append(f"{case.label}: stopped {_newly_stopped(before, after)}")
        if serving != health_pb2.HealthCheckResponse.SERVING:
            wrong.append(f"{case.label}: health {serving} after it")
    print("\n" + _table(rows, ("input (gRPC)", "status", "message")))

    assert not wrong, "\n".join(wrong)
    assert all(state == pb.STOP_STATE_NONE for state in _stop_states(channel).values())


def test_two_to_the_64_cannot_be_put_in_a_message() -> None:
    """uint64 fields refuse 2**64 and negative numbers before anything is sent;
    on the wire they arrive reduced (see the raw cases above)."""
    for value in (2**64, -1):
        with pytest.raises(ValueError, match="out of range"):
            pb.ThreadSelector(ident=value)
    with pytest.raises(ValueError, match="out of range"):
        pb.ThreadSelector(native_id=2**32)


def test_an_empty_reason_is_no_error_and_stops_only_the_target(
    workers: Host, channel: grpc.Channel
) -> None:
    """An empty reason is the default ("no reason given"), not bad input."""
    stub = pb_grpc.ThreadControlStub(channel)
    before = _stop_states(channel)
    target = next(
        t.identity
        for t in stub.ListThreads(pb.ListThreadsRequest(), timeout=DEADLINE).threads
        if t.name == "stubborn"
    )

    response = stub.StopThread(
        _stop(thread=pb.ThreadSelector(native_id=workers.tid("stubborn")), reason=""),
        timeout=DEADLINE,
    )

    assert response.outcome == pb.STOP_OUTCOME_REQUESTED
    assert response.thread.stop_reason == ""
    assert _newly_stopped(before, _stop_states(channel)) == {target: pb.STOP_STATE_REQUESTED}
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def _cli_cases(workers: Host) -> list[tuple[list[str], int, str]]:
    coop = str(workers.tid("coop-1"))
    return [
        (["stop", str(2**64)], 4, f"no live thread with TID or ident {2**64} (larger than"),
        (["show", str(2**64)], 4, f"no live thread with TID or ident {2**64} (larger than"),
        (["stop", str(2**64 - 1)], 4, f"no live thread with TID or ident {2**64 - 1} in process"),
        (["stop", str(threading.get_native_id())], 4, "no live thread with TID or ident"),
        (["stop", "--", "-1"], 2, "argument THREAD: must be a positive number, not -1"),
        (["stop", "0"], 2, "argument THREAD: must be a positive number, not 0"),
        (["stop", "1e3"], 4, "no live thread named '1e3' in process"),
        (["show", "x" * 300], 2, "argument THREAD: a thread name has 1 to 256 characters"),
        (["stop", coop, "--wait", "nan"], 2, "must be a number of seconds >= 0, not nan"),
        (["stop", coop, "--wait", "-1"], 2, "must be a number of seconds >= 0, not -1"),
        (["stop", coop, "--wait", "1e9"], 2, "wait must be between 0 and 3600 seconds"),
        (["stop", coop, "--grace", "inf"], 2, "must be a number of seconds >= 0, not inf"),
        (["stop", coop, "--reason", "r" * 2000], 2, "reason is 2000 characters; at most 1024"),
        (["stop", coop, "--reason", "a\x07b"], 2, "reason must not contain control characters"),
    ]


def test_the_cli_turns_bad_input_into_one_line_and_an_exit_code(
    workers: Host, env: dict[str, str], channel: grpc.Channel
) -> None:
    rows, wrong = [], []
    for args, exit_code, message in _cli_cases(workers):
        before = _stop_states(channel)
        result = run_cli(*args, "--pid", str(workers.pid), env=env)
        after = _stop_states(channel)
        last = (result.stderr.strip().splitlines() or [""])[-1]
        label = " ".join(
            repr(a) if not a.isprintable() else a if len(a) < 30 else f"{a[:8]}...({len(a)} chars)"
            for a in args
        )
        rows.append((f"threadctl {label}", str(result.returncode), last))
        if result.returncode != exit_code or message not in last:
            wrong.append(f"{label}: exit {result.returncode} {result.stderr!r}")
        if "Traceback" in result.stderr or result.stdout:
            wrong.append(f"{label}: printed {result.stdout!r} {result.stderr!r}")
        if _newly_stopped(before, after):
            wrong.append(f"{label}: stopped {_newly_stopped(before, after)}")
    print("\n" + _table(rows, ("input (CLI)", "exit", "stderr (last line)")))

    assert not wrong, "\n".join(wrong)
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def _drain_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(DEADLINE)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


GARBAGE: dict[str, bytes] = {
    "random bytes": os.urandom(4096),
    "an HTTP/1.1 request": b"GET / HTTP/1.1\r\nHost: threadctl\r\n\r\n",
    "a TLS ClientHello": bytes.fromhex("160301002e0100002a0303") + os.urandom(32) + b"\x00" * 8,
    "the HTTP/2 preface, then garbage frames": PREFACE + b"\xff" * 64,
    "a zero-length-prefixed flood of NULs": b"\x00" * 65536,
}


@pytest.mark.parametrize("what", sorted(GARBAGE))
def test_garbage_on_the_socket_is_dropped_and_the_server_goes_on(
    workers: Host, channel: grpc.Channel, what: str
) -> None:
    before = _stop_states(channel)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(workers.ready["socket"])
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            raw.sendall(GARBAGE[what])  # the server may hang up before all is sent
        try:
            reply = _drain_until_closed(raw)
        except ConnectionResetError:
            reply = b""

    # Whatever came back was HTTP/2 frames (SETTINGS, GOAWAY), never an echo or a
    # traceback; then the server closed the connection (recv returned b"").
    assert GARBAGE[what][:16] not in reply
    assert b"Traceback" not in reply
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
    assert not _newly_stopped(before, _stop_states(channel))


def test_many_idle_connections_do_not_starve_the_server(
    workers: Host, channel: grpc.Channel
) -> None:
    """200 connections that send nothing, and 50 that stop in the middle of the
    HTTP/2 preface: a new client is still answered within its deadline. (The
    server may close those over its connection cap, see _limits.)"""
    before = _stop_states(channel)
    idle: list[socket.socket] = []
    try:
        for i in range(250):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            idle.append(sock)
            sock.connect(workers.ready["socket"])
            if i >= 200:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(PREFACE[:10])
        with connect(f"unix:{workers.ready['socket']}") as fresh:
            assert _health(fresh, timeout=5) == health_pb2.HealthCheckResponse.SERVING
            listing = pb_grpc.ThreadControlStub(fresh).ListThreads(
                pb.ListThreadsRequest(), timeout=5
            )
        assert {"coop-1", "coop-2", "stubborn"} <= {t.name for t in listing.threads}
    finally:
        for sock in idle:
            sock.close()
    assert _health(channel, timeout=5) == health_pb2.HealthCheckResponse.SERVING
    assert not _newly_stopped(before, _stop_states(channel))


def test_undecodable_bytes_from_a_stranger_are_unauthenticated(workers: Host) -> None:
    """Authentication comes first: a caller without the owner's token learns
    nothing about what it sent, not even that it did not parse."""
    with grpc.insecure_channel(f"unix:{workers.ready['socket']}") as stranger:
        call = stranger.unary_unary(SERVICE + "StopThread")
        with pytest.raises(grpc.RpcError) as raised:
            call(b"\xff\xff\xff\xff", timeout=DEADLINE)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_of_an_unknown_service_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=DEADLINE
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
