"""install(): sockets, permissions, second installs, close, and the launcher."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import threadctl
from support import connect, run_cli
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc


@pytest.fixture
def server(runtime: Path) -> Iterator[threadctl.ControlServer]:
    with threadctl.install() as installed:
        yield installed


def _list_names(address: str) -> set[str]:
    with connect(address) as channel:
        listing = pb_grpc.ThreadControlStub(channel).ListThreads(
            pb.ListThreadsRequest(), timeout=10
        )
    return {t.name for t in listing.threads}


def test_default_socket_is_private_and_named_by_pid(
    server: threadctl.ControlServer, runtime: Path
) -> None:
    directory = runtime / "threadctl"

    assert server.socket_path == directory / f"{os.getpid()}.sock"
    assert server.address == f"unix:{server.socket_path}"
    dir_info, sock_info = os.lstat(directory), os.lstat(server.socket_path)
    assert stat.S_IMODE(dir_info.st_mode) == 0o700
    assert stat.S_ISSOCK(sock_info.st_mode)
    assert stat.S_IMODE(sock_info.st_mode) == 0o600
    assert dir_info.st_uid == sock_info.st_uid == os.geteuid()
    assert "threadctl-serve" in _list_names(server.address)


def test_second_install_is_an_error_unless_exist_ok(server: threadctl.ControlServer) -> None:
    with pytest.raises(threadctl.AlreadyInstalled, match="already serving"):
        threadctl.install()
    assert threadctl.install(exist_ok=True) is server


def test_close_removes_the_socket_and_allows_a_new_install(runtime: Path) -> None:
    first = threadctl.install()
    first.close()
    first.close()  # idempotent

    assert not first.socket_path.exists()
    with threadctl.install() as second:
        assert "threadctl-serve" in _list_names(second.address)


def test_server_threads_are_named_daemons_and_protected(server: threadctl.ControlServer) -> None:
    _list_names(server.address)  # starts an RPC worker
    ours = [t for t in threadctl.list_threads().threads if t.name.startswith("threadctl-")]

    assert {t.name for t in ours} >= {"threadctl-serve", "threadctl-rpc-1"}
    assert all(t.daemon and t.protected for t in ours)
    with pytest.raises(threadctl.ProtectedThread):
        threadctl.stop(ours[0].ident)


def test_stale_socket_is_replaced(runtime: Path) -> None:
    directory = runtime / "threadctl"
    directory.mkdir(mode=0o700)
    stale = directory / f"{os.getpid()}.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(stale))
    dead.close()  # the file stays, nobody listens: as after SIGKILL

    with threadctl.install() as server:
        assert "threadctl-serve" in _list_names(server.address)


def test_a_live_socket_is_never_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "busy.sock"
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(path))
    live.listen()
    try:
        with pytest.raises(threadctl.SocketInUse):
            threadctl.install(socket_path=path)
        assert path.exists()
    finally:
        live.close()


def test_sleep_returns_early_when_stopped_in_process(server: threadctl.ControlServer) -> None:
    import threading

    woke: list[bool] = []
    worker = threading.Thread(target=lambda: woke.append(threadctl.sleep(60)), name="sleeper")
    worker.start()
    threadctl_ready = lambda: any(  # noqa: E731
        t.name == "sleeper" and t.cooperative for t in threadctl.list_threads().threads
    )
    from support import wait_until

    wait_until(threadctl_ready, what="sleeper registered")
    result = threadctl.stop(worker.ident, wait=10)

    assert result.outcome is threadctl.StopOutcome.EXITED
    assert woke == [True]


def test_in_process_calls_answer_with_the_clients_types(server: threadctl.ControlServer) -> None:
    import threading

    from threadctl.client import Client

    release = threading.Event()
    worker = threading.Thread(target=lambda: threadctl.wait(release, 60), name="both-sides")
    worker.start()
    here = threadctl.list_threads()
    with Client(server.address) as client:
        there = client.list_threads()
        remote_view = client.get_thread(ident=worker.ident)

    assert type(here) is type(there) is threadctl.ThreadList
    assert here.process == there.process
    local_view = next(t for t in here.threads if t.ident == worker.ident)
    assert (local_view.name, local_view.native_id, local_view.identity) == (
        remote_view.name,
        remote_view.native_id,
        remote_view.identity,
    )
    assert threadctl.get_thread(worker.ident).stack == remote_view.stack
    stopped = threadctl.stop(worker.ident, wait=10)
    assert type(stopped) is threadctl.StopResult
    assert stopped.outcome is threadctl.StopOutcome.EXITED
    assert stopped.thread.identity == remote_view.identity


def test_cli_console_script_has_help(env: dict[str, str]) -> None:
    result = run_cli("--help", env=env)

    assert result.returncode == 0
    assert "Exit codes" in result.stdout


def test_threads_started_outside_threading_can_be_stopped(server: threadctl.ControlServer) -> None:
    import _thread
    import threading

    registered = threading.Event()
    woke: list[bool] = []

    def raw_worker() -> None:
        threadctl.stop_requested()
        registered.set()
        woke.append(threadctl.sleep(60))

    _thread.start_new_thread(raw_worker, ())
    assert registered.wait(20)
    dummy = next(
        t for t in threadctl.list_threads().threads if t.cooperative and t.name.startswith("Dummy")
    )

    result = threadctl.stop(native_id=dummy.native_id, wait=10)

    assert result.outcome is threadctl.StopOutcome.EXITED
    assert woke == [True]
    assert dummy.ident not in {t.ident for t in threadctl.list_threads().threads}


def test_forced_stops_can_be_disabled_by_the_host(runtime: Path) -> None:
    import threading

    release = threading.Event()
    worker = threading.Thread(target=release.wait, name="victim")
    worker.start()
    try:
        with threadctl.install(allow_forced_stops=False) as server:
            with connect(server.address) as channel:
                stub = pb_grpc.ThreadControlStub(channel)
                request = pb.StopThreadRequest(
                    thread=pb.ThreadSelector(ident=worker.ident), mode=pb.STOP_MODE_FORCE
                )
                with pytest.raises(grpc.RpcError) as refused:
                    stub.StopThread(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "disabled" in refused.value.details()
            victim = next(t for t in threadctl.list_threads().threads if t.ident == worker.ident)
            assert victim.stop_state == "none"
    finally:
        release.set()
        worker.join()


def test_threads_started_outside_threading_are_not_forced(server: threadctl.ControlServer) -> None:
    import _thread
    import threading

    registered, release = threading.Event(), threading.Event()

    def raw_worker() -> None:
        threading.current_thread()  # gives it a (dummy) thread object
        registered.set()
        release.wait()

    _thread.start_new_thread(raw_worker, ())
    assert registered.wait(20)
    try:
        dummy = next(t for t in threadctl.list_threads().threads if t.name.startswith("Dummy"))
        with pytest.raises(threadctl.ProtectedThread, match="not started by `threading`"):
            threadctl.stop(dummy.ident, force=True)
    finally:
        release.set()
