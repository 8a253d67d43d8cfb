"""Faults: what the control server does when things go wrong around it.

A handler's unexpected error, clients that vanish mid-wait, close() and
interpreter exit with calls in flight, SIGKILL and the stale socket it
leaves, fork() after install(), and threads that come and go by thousands.
Each test drives a real host program and checks what a client and the host
can observe: status codes, log lines, sockets, exit codes, liveness.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import threadctl
from support import DEADLINE, THREADCTL, Host, cli_json, connect, run_cli, run_host, wait_until
from threadctl._registry import registry
from threadctl.client import open_channel
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

StartHost = Callable[..., Host]
GENERIC = "internal error in the threadctl server (see the host's log)"
SERVING = health_pb2.HealthCheckResponse.SERVING


def _stub(channel: grpc.Channel) -> pb_grpc.ThreadControlStub:
    return pb_grpc.ThreadControlStub(channel)


def _health(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest()
    return health_pb2_grpc.HealthStub(channel).Check(request, timeout=DEADLINE).status


def _threads(channel: grpc.Channel, stacks: bool = False) -> list[pb.ThreadRecord]:
    request = pb.ListThreadsRequest(include_stacks=stacks)
    return list(_stub(channel).ListThreads(request, timeout=DEADLINE).threads)


def _stop_state(channel: grpc.Channel, name: str) -> int:
    return next(t.stop_state for t in _threads(channel) if t.name == name)


def _waiting_for_exit(channel: grpc.Channel) -> bool:
    """Whether a server thread is inside a stop's wait for a thread to exit."""
    return any(
        frame.function.endswith("wait_for_exit")
        for thread in _threads(channel, stacks=True)
        for frame in thread.stack
    )


CliStop = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def cli_stop(env: dict[str, str]) -> Iterator[CliStop]:
    """Start `threadctl stop ARGS --pid HOST` in the background; whatever is
    still running after the test is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(host: Host, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [THREADCTL, "stop", *args, "--pid", str(host.pid)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# ------------------------------------------------------------- handler errors


def test_an_unexpected_handler_error_reaches_the_log_not_the_client(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("faulty.py")
    secret = host.ready["secret"]
    with connect(host.ready["socket"]) as channel:
        host.send("fail")
        host.expect("ARMED")
        with pytest.raises(grpc.RpcError) as listing:
            _stub(channel).ListThreads(pb.ListThreadsRequest(), timeout=DEADLINE)
        log = json.loads(host.expect("LOG ")[len("LOG ") :])

        host.send("fail")
        host.expect("ARMED")
        with pytest.raises(grpc.RpcError) as watching:
            next(_stub(channel).WatchThreads(pb.WatchThreadsRequest(), timeout=DEADLINE))
        host.expect("LOG ")

        host.send("fail")
        host.expect("ARMED")
        cli = run_cli("list", "--pid", str(host.pid), env=env)
        host.expect("LOG ")

        for error in (listing.value, watching.value):
            assert error.code() == grpc.StatusCode.INTERNAL
            assert error.details() == GENERIC
            seen_by_client = f"{error.details()} {error.debug_error_string()}"
            seen_by_client += repr(error.trailing_metadata())
            assert secret not in seen_by_client
            assert "RuntimeError" not in seen_by_client
        assert log["level"] == "ERROR"
        assert "unexpected error" in log["message"]
        assert "RuntimeError" in log["exc"]
        assert secret in log["exc"]
        assert cli.returncode == 1
        assert cli.stderr == f"threadctl: {GENERIC}\n"
        assert secret not in cli.stdout + cli.stderr
        # The fault was one call's: the server goes on.
        assert _health(channel) == SERVING
        assert "MainThread" in {t.name for t in _threads(channel)}


# ------------------------------------------------------ callers that go away


@pytest.mark.parametrize("how", ["killed", "cancelled", "deadline"])
def test_a_wait_ends_when_its_caller_goes_and_the_stop_stands(
    workers: Host, cli_stop: CliStop, how: str
) -> None:
    stubborn = workers.tid("stubborn")
    with connect(workers.ready["socket"]) as channel:
        if how == "killed":  # the CLI process dies mid-wait (SIGKILL)
            cli = cli_stop(workers, str(stubborn), "--wait", "60")
            wait_until(lambda: _waiting_for_exit(channel), what="the server to wait")
            cli.kill()
            cli.communicate(timeout=DEADLINE)
        elif how == "cancelled":  # the client cancels its call
            request = pb.StopThreadRequest(
                thread=pb.ThreadSelector(native_id=stubborn), wait_seconds=60
            )
            call = _stub(channel).StopThread.future(request, timeout=120)
            wait_until(lambda: _waiting_for_exit(channel), what="the server to wait")
            assert call.cancel()
        else:  # the call's deadline passes during the wait
            request = pb.StopThreadRequest(
                thread=pb.ThreadSelector(native_id=stubborn), wait_seconds=60
            )
            answer = _stub(channel).StopThread.future(request, timeout=1.0)
            # The server answers "still running" just before the deadline; on a
            # loaded machine the deadline may win the race.
            if answer.exception(timeout=DEADLINE) is None:
                assert answer.result().outcome == pb.STOP_OUTCOME_STILL_RUNNING
            else:
                assert answer.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        wait_until(lambda: not _waiting_for_exit(channel), what="the server's wait to end")
        assert _stop_state(channel, "stubborn") == pb.STOP_STATE_REQUESTED
        assert _health(channel) == SERVING


# ----------------------------------------------------- close() with calls in flight


def test_close_ends_calls_in_flight_and_removes_the_socket(workers: Host) -> None:
    socket_path = Path(workers.ready["socket"])
    token_path = socket_path.with_suffix(".token")
    outcomes: dict[str, object] = {}
    with connect(str(socket_path)) as channel:
        stop = _stub(channel).StopThread.future(
            pb.StopThreadRequest(
                thread=pb.ThreadSelector(native_id=workers.tid("stubborn")), wait_seconds=60
            ),
            timeout=120,
        )
        watch = _stub(channel).WatchThreads(pb.WatchThreadsRequest(interval_seconds=0.2))
        first_message = threading.Event()

        def follow() -> None:
            try:
                for _ in watch:
                    first_message.set()
                outcomes["watch"] = grpc.StatusCode.OK
            except grpc.RpcError as error:
                outcomes["watch"] = error.code()

        follower = threading.Thread(target=follow, name="watch-follower")
        follower.start()
        try:
            assert first_message.wait(DEADLINE)
            wait_until(lambda: _waiting_for_exit(channel), what="the stop to wait")

            workers.send("close")
            workers.expect("CLOSED")
        finally:
            follower.join(DEADLINE)
            watch.cancel()
        assert not follower.is_alive(), "the watch hung after close()"
        try:
            outcomes["stop"] = pb.StopOutcome.Name(stop.result(timeout=DEADLINE).outcome)
        except grpc.RpcError as error:
            outcomes["stop"] = error.code()

        ended = {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
        assert outcomes["watch"] in ended, outcomes
        assert outcomes["stop"] in {
            "STOP_OUTCOME_STILL_RUNNING",
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.CANCELLED,
        }, outcomes
        assert not socket_path.exists()
        assert not token_path.exists()
        with pytest.raises(grpc.RpcError) as after:
            _health(channel)
        assert after.value.code() == grpc.StatusCode.UNAVAILABLE
    assert workers.proc.poll() is None  # the host itself goes on
    assert workers.stop() == 0


# -------------------------------------------------------- the host's own exit


@pytest.mark.parametrize(
    ("ending", "exit_code"),
    [("return", 0), ("raise", 1), ("sigterm-exits", 143), ("sigterm-default", -signal.SIGTERM)],
)
def test_the_host_exits_promptly_with_a_wait_in_flight(
    start_host: StartHost, cli_stop: CliStop, ending: str, exit_code: int
) -> None:
    """The CLI waits up to 60 s for a thread that ignores its flag; the host
    ends meanwhile: its interpreter shutdown must not wait for that call."""
    host = start_host("lifecycle.py", *(["--sigterm-exits"] if ending == "sigterm-exits" else []))
    socket_path = Path(host.ready["socket"])
    cli = cli_stop(host, str(host.tid("stubborn")), "--wait", "60")
    with connect(str(socket_path)) as channel:
        wait_until(lambda: _waiting_for_exit(channel), what="the server to wait")
    if ending in ("return", "raise"):
        host.send(ending)
    else:
        host.proc.send_signal(signal.SIGTERM)

    assert host.proc.wait(timeout=DEADLINE) == exit_code
    out, err = cli.communicate(timeout=DEADLINE)
    # 6: answered "still running" as the server closed; 3: the call was cut.
    assert cli.returncode in (3, 6), (cli.returncode, out, err)
    assert "Traceback" not in err
    assert host.stop() == exit_code
    assert not any("Exception ignored" in line for line in host.stderr_lines), host.stderr_lines
    if ending == "sigterm-default":
        assert socket_path.exists()  # no Python code ran: the next install replaces it
    else:
        assert not socket_path.exists()
    if ending == "raise":
        assert "RuntimeError: the host's main thread failed" in host.stderr_lines


# ------------------------------------------------------------- SIGKILL, stale sockets


def _refused(path: Path) -> bool:
    """Whether connecting to the socket at `path` is refused (nobody listens)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return True
    return False


def test_a_killed_hosts_socket_is_replaced_and_a_live_one_never(
    start_host: StartHost, env: dict[str, str]
) -> None:
    path = Path(env["XDG_RUNTIME_DIR"]) / "service.sock"
    first = start_host("lifecycle.py", "--socket", str(path))
    first.proc.kill()
    first.proc.wait(timeout=DEADLINE)
    assert path.exists()  # stale: left by SIGKILL
    assert path.with_suffix(".token").exists()
    assert _refused(path)

    second = start_host("lifecycle.py", "--socket", str(path))
    third = start_host("lifecycle.py", "--socket", str(path))

    assert "error" not in second.ready
    assert second.ready["token"] != first.ready["token"]
    assert third.ready == {"error": f"SocketInUse: a live server already listens on {path}"}
    listing = run_cli("list", "--json", "--target", str(path), env=env)
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout)["process"]["pid"] == second.pid
    stale_token = open_channel(f"unix:{path}", token=first.ready["token"], tls=None)
    with stale_token, pytest.raises(grpc.RpcError) as refused:
        pb_grpc.ThreadControlStub(stale_token).ListThreads(pb.ListThreadsRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_killed_hosts_default_socket_is_cleaned_up_by_the_next_install(
    start_host: StartHost, env: dict[str, str]
) -> None:
    first = start_host("lifecycle.py")
    stale = Path(first.ready["socket"])
    first.proc.kill()
    first.proc.wait(timeout=DEADLINE)
    assert stale.exists()
    ps_before = run_cli("ps", "--json", env=env)

    second = start_host("lifecycle.py")

    assert json.loads(ps_before.stdout) == []  # a dead PID is never listed
    assert not stale.exists()
    assert not stale.with_suffix(".token").exists()
    ps_after = json.loads(run_cli("ps", "--json", env=env).stdout)
    assert [row["pid"] for row in ps_after] == [second.pid]


# ---------------------------------------------------------------------- fork


def test_a_forked_child_without_install_has_no_server_and_the_parent_serves(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("forker.py")
    host.send("fork none")
    pid = int(host.expect("FORKED ").split()[1])
    assert host.expect("CHILD ") == f"CHILD {pid} none none"

    orphan = run_cli("list", "--pid", str(pid), env=env)
    # One-shot, through the registry the child inherited: its main thread
    # has the child's own TID (CPython keeps the parent's on it).
    one_shot = cli_json("list", "--pid", str(pid), "--attach", env=env)
    shown = run_cli("show", str(pid), "--pid", str(pid), "--attach", env=env)
    parent = run_cli("list", "--json", "--pid", str(host.pid), env=env)
    host.send("release")
    reaped = host.expect(f"REAPED {pid} ")
    after = run_cli("list", "--json", "--pid", str(host.pid), env=env)

    assert orphan.returncode == 3
    assert f"process {pid} runs no threadctl server" in orphan.stderr
    (main,) = (t for t in one_shot["threads"] if t["main"])
    assert (main["native_id"], main["cpu_seconds"] is not None) == (pid, True)
    assert shown.returncode == 0, shown.stderr
    assert parent.returncode == 0, parent.stderr
    assert json.loads(parent.stdout)["process"]["pid"] == host.pid
    assert reaped == f"REAPED {pid} 0"  # the child's interpreter shut down cleanly
    assert after.returncode == 0, after.stderr
    with connect(host.ready["socket"]) as channel:
        assert _health(channel) == SERVING


def test_a_forked_child_that_installs_serves_or_gets_a_clear_error(
    start_host: StartHost, env: dict[str, str]
) -> None:
    """Whether gRPC can serve after fork() depends on its version (1.85 can,
    1.66 gives a server that never answers): the child gets a working server
    of its own or a clear error, never a broken server, never a hang."""
    host = start_host("forker.py")
    host.send("fork install")
    pid = int(host.expect("FORKED ").split()[1])
    _, child_pid, plan, outcome, detail = host.expect("CHILD ").split(" ", 4)
    child_socket = Path(host.ready["socket"]).with_name(f"{pid}.sock")

    if outcome == "serving":
        assert detail == str(child_socket)
        listing = run_cli("list", "--json", "--pid", str(pid), env=env)
        assert listing.returncode == 0, listing.stderr
        child = json.loads(listing.stdout)
        assert child["process"]["pid"] == pid
        assert {"MainThread", "threadctl-serve"} <= {t["name"] for t in child["threads"]}
        main = next(t for t in child["threads"] if t["main"])
        assert main["native_id"] == pid  # the kernel's TID, not the parent's
        assert main["cpu_seconds"] is not None
        assert run_cli("show", str(pid), "--pid", str(pid), env=env).returncode == 0
    else:
        assert outcome == "error", detail
        assert detail.startswith("ThreadctlError: "), detail
        assert "fork" in detail, detail
        assert not child_socket.exists()
        assert not child_socket.with_suffix(".token").exists()
    parent = run_cli("list", "--json", "--pid", str(host.pid), env=env)
    host.send("release")
    reaped = host.expect(f"REAPED {pid} ")
    after = run_cli("list", "--json", "--pid", str(host.pid), env=env)

    assert (int(child_pid), plan) == (pid, "install")
    assert parent.returncode == 0, parent.stderr
    assert json.loads(parent.stdout)["process"]["pid"] == host.pid
    assert reaped == f"REAPED {pid} 0"
    assert not child_socket.exists()
    assert after.returncode == 0, after.stderr
    print(f"\nfork: child install -> {outcome} {detail}")


# ---------------------------------------------------------------------- churn


def test_thread_churn_keeps_the_registry_bounded_and_listings_current() -> None:
    """5000 short-lived threads that each touch their stop flag, listed and
    stopped all along: only the expected errors, no record of a thread that
    is gone, and the registry never grows past its bound."""
    batches, batch_size = 250, 20
    done = threading.Event()
    errors: list[BaseException] = []
    sizes: list[int] = []
    stopped = [0]
    ceiling = 2 * (threading.active_count() + batch_size + 3) + 65

    def short_lived() -> None:
        for _ in range(5):  # a few ms: long enough to be listed and stopped now and then
            if threadctl.sleep(0.001):
                return

    def churn() -> None:
        for batch in range(batches):
            threads = [
                threading.Thread(target=short_lived, name=f"short-{batch}-{i}")
                for i in range(batch_size)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            sizes.append(len(registry._states))
        done.set()

    def list_and_stop(seed: int) -> None:
        rng = random.Random(seed)
        while not done.is_set():
            try:
                listed = threadctl.list_threads().threads
                shorts = [t for t in listed if t.name.startswith("short-")]
                if shorts:
                    victim = rng.choice(shorts)
                    threadctl.stop(victim.ident, expected_identity=victim.identity)
                    stopped[0] += 1
            except (threadctl.ThreadNotFound, threadctl.IdentityMismatch):
                pass  # it exited, or its ident passed on: the documented answers
            except BaseException as error:  # anything else is a failure
                errors.append(error)
                return

    running = [threading.Thread(target=churn, name="churner")]
    running += [
        threading.Thread(target=list_and_stop, args=(i,), name=f"lister-{i}") for i in range(2)
    ]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=240)

    assert not any(thread.is_alive() for thread in running), "churn or a lister hung"
    assert errors == []
    assert len(sizes) == batches
    assert max(sizes) <= ceiling, (max(sizes), ceiling)
    assert not [t.name for t in threadctl.list_threads().threads if t.name.startswith("short-")]
    assert stopped[0] > 0
    print(
        f"\nchurn: {batches * batch_size} threads, {stopped[0]} stopped;"
        f" registry at most {max(sizes)} states (bound {ceiling})"
    )


def test_children_forked_during_stack_captures_get_their_gc_and_can_list(
    env: dict[str, str],
) -> None:
    # Issue 18.8: without the at-fork reset, a child forked while another
    # thread held the capture lock hung in its first listing (1 to 2 in 100
    # here, 14 of 91 forks on 3.11 in the report), or ran with its GC off.
    result, _ = run_host("fork_capture.py", "1000", env=env, timeout=600)
    assert result == {"answered": 1000, "hung": 0, "gc_off": 0}
