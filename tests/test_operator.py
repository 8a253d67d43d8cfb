"""The operator's view against real hosts: activity, CPU, top, dump, ps,
WatchThreads, and the standard health and reflection services."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import pwd
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from support import (
    DEADLINE,
    THREADCTL,
    Host,
    cli_json,
    connect,
    kernel_thread_names,
    run_cli,
    wait_until,
)
from threadctl.client import Client

StartHost = Callable[..., Host]


@pytest.fixture
def activity(start_host: StartHost) -> Host:
    return start_host("activity.py")


def _by_name(host: Host, env: dict[str, str]) -> dict[str, dict[str, object]]:
    listing = cli_json("list", "--pid", str(host.pid), env=env)
    return {t["name"] or "(partial)": t for t in listing["threads"]}


def test_each_thread_is_reported_doing_what_it_does(activity: Host, env: dict[str, str]) -> None:
    expected = {
        "burner": ("running", ""),
        "sleeper": ("sleeping", "time.sleep"),
        "queued": ("waiting", "queue.Queue.get"),
        "locked": ("waiting", "acquire"),
        "reader": ("io", "recv"),
        "evented": ("waiting", "threading.Event.wait"),
        "(partial)": ("sleeping", "time.sleep"),
    }

    def states() -> dict[str, tuple[object, object]] | None:
        threads = _by_name(activity, env)
        seen = {
            n: (threads[n]["activity"], threads[n]["activity_detail"])
            for n in expected
            if n in threads
        }
        return seen if seen == expected else None

    wait_until(states, what=f"activities {expected}")
    partial = _by_name(activity, env)["(partial)"]
    assert partial["partial"] is True
    assert partial["native_id"] == 0


def test_cpu_burner_tops_the_cpu_sorted_listing_and_top(
    activity: Host, env: dict[str, str]
) -> None:
    def burner_first() -> bool:
        listing = cli_json("list", "--sort", "cpu", "--pid", str(activity.pid), env=env)
        return listing["threads"][0]["name"] == "burner"

    wait_until(burner_first, what="burner to lead the CPU-sorted listing")
    top = run_cli("top", "-n", "1", "--interval", "0.5", "--pid", str(activity.pid), env=env)

    assert top.returncode == 0, top.stderr
    header, columns, first, *_ = top.stdout.splitlines()
    assert header.startswith(f"PID {activity.pid} ")
    assert columns.split()[:3] == ["TID", "NAME", "CPU%"]
    assert first.split()[1] == "burner"
    assert float(first.split()[2]) > 20.0  # percent of a core


def test_top_json_prints_one_object_per_line_and_interval(
    activity: Host, env: dict[str, str]
) -> None:
    top = run_cli(
        "top", "--json", "-n", "2", "--interval", "0.2", "--pid", str(activity.pid), env=env
    )

    assert top.returncode == 0, top.stderr
    samples = [json.loads(line) for line in top.stdout.splitlines()]
    assert len(samples) == 2
    for sample in samples:
        assert sample["process"]["pid"] == activity.pid
        burner = next(t for t in sample["threads"] if t["name"] == "burner")
        assert isinstance(burner["cpu_share"], float)


def test_dump_reads_like_py_spy(activity: Host, env: dict[str, str]) -> None:
    wait_until(
        lambda: _by_name(activity, env)["sleeper"]["activity"] == "sleeping", what="sleeper asleep"
    )
    result = run_cli("dump", "--pid", str(activity.pid), env=env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Process {activity.pid}: ")
    assert lines[1].startswith("Python v")
    at = lines.index(next(line for line in lines if line.endswith('"sleeper"')))
    assert lines[at].startswith("Thread ")
    assert "(sleeping: time.sleep)" in lines[at]
    assert lines[at + 1].startswith("    sleeper (")
    assert "activity.py:" in lines[at + 1]
    assert any("(partial record" in line for line in lines)


def test_watch_reports_cpu_shares_and_thread_changes(activity: Host, env: dict[str, str]) -> None:
    with Client(f"unix:{activity.ready['socket']}") as client:
        samples = client.watch_threads(interval=0.2)
        first = next(samples)
        assert all(t.cpu_share is None for t in first.threads)
        activity.send("spawn visitor")
        activity.expect("SPAWNED visitor")
        visitor = None
        for sample in samples:
            if visitor is None:
                visitor = next((t for t in sample.threads if t.name == "visitor"), None)
                if visitor is not None:
                    assert visitor.identity in sample.started
                    burner = next(t for t in sample.threads if t.name == "burner")
                    assert burner.cpu_share is not None
                    assert burner.cpu_share > 0
                    activity.send("end visitor")
            elif any(t.identity == visitor.identity for t in sample.exited):
                break
        samples.close()


def test_ps_lists_live_hosts_and_ignores_stale_sockets(
    start_host: StartHost, env: dict[str, str]
) -> None:
    first, second = start_host("activity.py"), start_host("activity.py")
    directory = Path(first.ready["socket"]).parent
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = directory / f"{int(dead.stdout)}.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(stale))
    leftover.close()

    result = run_cli("ps", "--json", env=env)

    assert result.returncode == 0, result.stderr
    rows = {row["pid"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {first.pid, second.pid}
    assert rows[first.pid]["program"].endswith("activity.py")
    assert isinstance(rows[first.pid]["threads"], int)
    assert rows[first.pid]["threads"] >= 8
    table = run_cli("ps", env=env).stdout.splitlines()
    assert table[0].split() == ["PID", "USER", "THREADS", "PROGRAM", "ADDRESS"]
    assert rows[first.pid]["user"] == pwd.getpwuid(os.geteuid()).pw_name
    start_host("activity.py")  # a new install cleans up after the dead process
    assert not stale.exists()


def test_health_and_reflection_services(activity: Host) -> None:
    with connect(f"unix:{activity.ready['socket']}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "threadctl.v1.ThreadControl"):
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert services == {
            "threadctl.v1.ThreadControl",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
            "grpc.reflection.v1.ServerReflection",
        }
        descriptor = database.FindFileContainingSymbol("threadctl.v1.ThreadControl")
        assert descriptor.package == "threadctl.v1"


def test_reflection_v1_answers_as_v1alpha_does_and_describes_itself(activity: Host) -> None:
    # The two protocols' messages are the same on the wire, so v1alpha's
    # classes speak v1 here, on a channel with no credentials.
    with grpc.insecure_channel(f"unix:{activity.ready['socket']}") as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="grpc.reflection.v1.ServerReflection"
            ),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="threadctl.v1.Nothing"),
        ]
        listed, described, missing = list(info(iter(requests), timeout=10))

    assert "grpc.reflection.v1.ServerReflection" in {
        s.name for s in listed.list_services_response.service
    }
    (file_bytes,) = described.file_descriptor_response.file_descriptor_proto
    v1 = descriptor_pb2.FileDescriptorProto.FromString(file_bytes)
    assert (v1.name, v1.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
    (method,) = v1.service[0].method
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_top_on_a_terminal_draws_and_quits_on_q(activity: Host, env: dict[str, str]) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI on a pseudo-terminal
        os.execve(
            THREADCTL,
            [THREADCTL, "top", "--interval", "0.2", "--pid", str(activity.pid)],
            {**env, "TERM": "xterm"},
        )
    screen = b""
    deadline = time.monotonic() + DEADLINE
    try:
        while b"burner" not in screen:
            assert time.monotonic() < deadline, f"top drew nothing useful: {screen[-500:]!r}"
            if select.select([fd], [], [], 0.5)[0]:
                screen += os.read(fd, 65536)
        os.write(fd, b"q")
        while True:
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                break
            assert time.monotonic() < deadline, "top did not quit on q"
            if select.select([fd], [], [], 0.1)[0]:
                with contextlib.suppress(OSError):
                    os.read(fd, 65536)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@pytest.mark.parametrize("mode", ["all", "own"])
def test_top_h_shows_thread_names(start_host: StartHost, env: dict[str, str], mode: str) -> None:
    host = start_host("os_names.py", mode)
    host.send("spawn late-comer")
    late_tid = int(host.expect("SPAWNED late-comer").split()[2])
    cli_json("list", "--pid", str(host.pid), env=env)  # an RPC worker has run by now

    names = kernel_thread_names(host.pid)

    ours = set(names.values())
    assert {"threadctl-serve", "threadctl-rpc-1"} <= ours  # always named
    assert names[host.pid] != "MainThread"  # the process keeps its own name
    given = {
        host.tid("worker-1"): "worker-1",
        host.tid("a-name-longer-than-15-bytes"): "a-name-longer-t",  # the kernel keeps 15 bytes
        host.tid("ünïcödé-名前"): "ünïcödé-名",  # cut at a character, within 15 bytes
        late_tid: "late-comer",  # started after install
    }
    for tid, name in given.items():
        assert (names[tid] == name) is (mode == "all"), (names[tid], name)
