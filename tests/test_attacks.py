"""Nobody can break it (issue 18): what a caller without credentials sends
cannot hang the host's close() or exit, grow its memory, or take the server
away from the callers who have credentials.

Each test starts a real host program and attacks it over its real sockets;
the host's own view (exit code, RSS, log lines) and an authorised caller's
view (status codes) decide.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from support import DEADLINE, Host, connect, run_cli, wait_until
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

StartHost = Callable[..., Host]
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
GARBAGE = b"\xff\xff\xff\xff"  # field 31, wire type 7: no protobuf message
NOT_A_MESSAGE = "the request is not a valid protobuf message for this method"


def _reflect(
    channel: grpc.Channel, payload: bytes, method: str = REFLECTION
) -> tuple[grpc.StatusCode, str]:
    """One ServerReflectionInfo call that sends `payload` as it is."""
    call = channel.stream_stream(method)(iter([payload]), timeout=DEADLINE)
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
        answers = [
            _reflect(channel, GARBAGE, method)
            for method in (REFLECTION, REFLECTION_V1)
            for _ in range(10)
        ]
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


# ------------------------------------------- what callers without credentials hold

TOKEN = "reader-token-0123456789abcdef"
LIST_THREADS = "/threadctl.v1.ThreadControl/ListThreads"
STOP_THREAD = "/threadctl.v1.ThreadControl/StopThread"


class RawHTTP2:
    """A raw HTTP/2 client (the h2 package) over TLS: opens gRPC streams that
    send headers and never a message, and reads what the server answers."""

    def __init__(self, address: str, ca: Path) -> None:
        host, port = address.rsplit(":", 1)
        context = ssl.create_default_context(cafile=str(ca))
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT  # 3.13's default; the test CA is plain
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection((host, int(port)), timeout=DEADLINE)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.status: dict[int, str] = {}  # stream id -> grpc-status
        self.goaway = False  # the server said it closes the connection
        self.closed = False  # the server closed it

    def open_streams(self, path: str, count: int) -> list[int]:
        streams = []
        for _ in range(count):
            stream = self.conn.get_next_available_stream_id()
            self.conn.send_headers(stream, [
                (":method", "POST"), (":scheme", "https"), (":path", path),
                (":authority", "localhost"), ("content-type", "application/grpc"),
                ("te", "trailers"),
            ])  # fmt: skip
            streams.append(stream)
        self.sock.sendall(self.conn.data_to_send())
        return streams

    def read_until(self, done: Callable[[], bool], timeout: float = DEADLINE) -> None:
        """Take in what the server sends until `done()` or the server has
        closed the connection; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while not done() and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s; statuses {self.status}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
            elif not self.goaway:
                self._take(data)

    def _take(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:  # frames after a GOAWAY in the same read
            self.goaway = True
            return
        for event in events:
            headers = getattr(event, "headers", None)
            if headers and "grpc-status" in dict(headers):
                self.status[event.stream_id] = dict(headers)["grpc-status"]
            if isinstance(event, h2.events.ConnectionTerminated):
                self.goaway = True  # the server is closing: read on until it has
                return
        with contextlib.suppress(OSError):
            self.sock.sendall(self.conn.data_to_send())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _token_host(start_host: StartHost, env: dict[str, str], pki: Path, **extra: object) -> Host:
    """A host that also serves TLS on TCP, where callers authenticate with a token."""
    config = {
        "tcp": "127.0.0.1:0",
        "cert": str(pki / "server.pem"),
        "key": str(pki / "server.key"),
        "tokens": [["ci", TOKEN, "READ"]],
        **extra,
    }
    env["THREADCTL_TEST_TCP"] = json.dumps(config)
    return start_host("tcp_host.py")


def _authorised_lists(host: Host, env: dict[str, str], pki: Path) -> tuple[int, int]:
    """Exit codes of `threadctl list` over the Unix socket and over TCP."""
    client_env = {k: v for k, v in env.items() if k != "THREADCTL_TEST_TCP"}
    local = run_cli("list", "--pid", str(host.pid), env=client_env)
    remote = run_cli("list", "--target", host.ready["tcp"], "--tls-ca", str(pki / "ca.pem"),
                     "--tls-server-name", "localhost",
                     env={**client_env, "THREADCTL_TOKEN": TOKEN})  # fmt: skip
    return local.returncode, remote.returncode


def test_streams_without_credentials_cannot_take_the_call_slots(
    start_host: StartHost, env: dict[str, str], pki: Path
) -> None:
    """40 streams that send headers and never a message held all 32 call
    slots before: authorised calls got RESOURCE_EXHAUSTED. Now each is
    refused at once, and the public methods (health, reflection) hold 4
    slots at most."""
    host = _token_host(start_host, env, pki)
    attacker = RawHTTP2(host.ready["tcp"], pki / "ca.pem")
    prober = RawHTTP2(host.ready["tcp"], pki / "ca.pem")
    try:
        refused = attacker.open_streams(LIST_THREADS, 20) + attacker.open_streams(STOP_THREAD, 20)
        attacker.read_until(lambda: set(refused) <= attacker.status.keys())
        public = prober.open_streams(HEALTH_CHECK, 20) + prober.open_streams(REFLECTION, 20)
        prober.read_until(lambda: len(prober.status) >= 36)
        codes = _authorised_lists(host, env, pki)  # while the streams are open

        assert [attacker.status[s] for s in refused] == ["16"] * 40  # UNAUTHENTICATED
        assert sorted(prober.status.values()) == ["8"] * 36  # RESOURCE_EXHAUSTED
        assert len(set(public) - prober.status.keys()) == 4  # held: the public slots
        assert codes == (0, 0)
        assert not attacker.closed
    finally:
        attacker.close()
        prober.close()


def _closed_by_server(connection: socket.socket) -> bool:
    """Whether the server has closed `connection` (reads until EOF or reset;
    bytes it sends first, such as a GOAWAY, are skipped)."""
    try:
        while connection.recv(4096):
            pass
    except (ConnectionResetError, TimeoutError):
        pass
    except BlockingIOError:
        return False
    return True


def test_bare_connects_cannot_exhaust_the_hosts_file_descriptors(
    start_host: StartHost, env: dict[str, str], pki: Path
) -> None:
    """1,100 bare TCP connects took 1,100 of the host's descriptors before
    (gRPC waited 120 s for their handshake), past its limit. Now each listener
    takes a few (an eighth of the limit at most), closes the others at once,
    and closes the rest when their handshake time is up."""
    host = _token_host(start_host, env, pki, nofile=256, limits={"HANDSHAKE_TIMEOUT_SECONDS": 2})
    host.send("fds")
    before = int(host.expect("FDS ").split()[1])
    address = host.ready["tcp"].rsplit(":", 1)
    connects = [socket.create_connection((address[0], int(address[1]))) for _ in range(400)]
    try:
        for connection in connects:
            connection.setblocking(False)
        # The server closes each connect past its cap at once.
        wait_until(lambda: sum(map(_closed_by_server, connects)) >= 400 - 32, what="closes")
        host.send("fds")
        during = int(host.expect("FDS ").split()[1])
        host.send("open")
        opened = host.expect("OPEN")
        local = _authorised_lists(host, env, pki)[0]
        # The ones it took are closed when their handshake time is up.
        for connection in connects:
            connection.setblocking(True)
            connection.settimeout(DEADLINE)
        unanswered = [c for c in connects if not _closed_by_server(c)]
        remote = _authorised_lists(host, env, pki)[1]
    finally:
        for connection in connects:
            connection.close()

    assert opened == "OPENED"
    assert during - before <= 32 + 4, (before, during)  # the cap (256 // 8), and a few of gRPC's
    assert local == 0
    assert unanswered == []
    assert remote == 0


def test_idle_and_old_connections_are_closed_and_top_carries_on(
    start_host: StartHost, env: dict[str, str], pki: Path
) -> None:
    """A connection that makes no call is closed after the idle time; any
    connection after its age and grace, even one holding a reflection stream
    that never sends (here 1 s each). `threadctl top` reopens its watch."""
    limits = {"CONNECTION_IDLE_SECONDS": 1, "CONNECTION_AGE_SECONDS": 1,
              "CONNECTION_AGE_GRACE_SECONDS": 1}  # fmt: skip
    host = _token_host(start_host, env, pki, limits=limits)
    idle = RawHTTP2(host.ready["tcp"], pki / "ca.pem")
    holder = RawHTTP2(host.ready["tcp"], pki / "ca.pem")
    try:
        held = holder.open_streams(REFLECTION, 1)
        idle.read_until(lambda: False)
        holder.read_until(lambda: False)
    finally:
        idle.close()
        holder.close()
    client_env = {k: v for k, v in env.items() if k != "THREADCTL_TEST_TCP"}
    top = run_cli("top", "-n", "8", "--interval", "0.5", "--pid", str(host.pid), env=client_env)

    assert idle.closed
    assert holder.closed
    assert held[0] not in holder.status or holder.status[held[0]] != "0"
    assert top.returncode == 0, top.stderr
    assert top.stdout.count("PID ") == 8
