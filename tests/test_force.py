"""Forced stops against real host processes: delivery, pending, critical
sections, grace escalation, identity checks, refusals, audit."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Iterator

import grpc
import pytest

from support import Host, cli_json, connect, run_cli, run_host, wait_until
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

StartHost = Callable[..., Host]
# A forced stop of a thread blocked in a call: queued until the call returns;
# from CPython 3.13, where nothing may be queued, deferred to a line trap.
LINE_TRAPS = sys.version_info >= (3, 13)
WAITING_OUTCOME = pb.STOP_OUTCOME_FORCE_DEFERRED if LINE_TRAPS else pb.STOP_OUTCOME_FORCE_PENDING


@pytest.fixture
def stub_for() -> Iterator[Callable[[Host], pb_grpc.ThreadControlStub]]:
    channels: list[grpc.Channel] = []

    def make(host: Host) -> pb_grpc.ThreadControlStub:
        channels.append(connect(f"unix:{host.ready['socket']}"))
        return pb_grpc.ThreadControlStub(channels[-1])

    yield make
    for channel in channels:
        channel.close()


def _record(stub: pb_grpc.ThreadControlStub, name: str) -> pb.ThreadRecord | None:
    listing = stub.ListThreads(pb.ListThreadsRequest(), timeout=10)
    return next((t for t in listing.threads if t.name == name), None)


def _audits(host: Host, count: int) -> dict[str, dict[str, object]]:
    """The next `count` audit records the host printed, by action."""
    records = [json.loads(host.expect("AUDIT ")[len("AUDIT ") :]) for _ in range(count)]
    return {record["action"]: record for record in records}


def test_busy_thread_unwinds_through_finally_and_releases_its_lock(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("forcible.py", "spinner")

    result = run_cli(
        "stop",
        str(host.tid("spinner")),
        "--force",
        "--wait",
        "10",
        "--reason",
        "runaway",
        "--json",
        "--pid",
        str(host.pid),
        env=env,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["outcome"] == "exited"
    assert outcome["forced"] is True
    host.expect("FINALLY spinner")
    host.send("lock?")
    assert host.expect("LOCK ") == "LOCK acquired"
    audits = _audits(host, 2)
    assert audits["stop"]["mode"] == "force"
    assert audits["stop"]["outcome"] == "exited"
    assert audits["stop"]["reason"] == "runaway"
    assert audits["stop"]["native_id"] == host.tid("spinner")
    assert audits["thread_ended"]["by"] == "forced stop"
    assert audits["thread_ended"]["native_id"] == host.tid("spinner")
    assert host.stop() == 0
    assert not [line for line in host.stderr_lines if "Traceback" in line or "Exception" in line]


def test_except_exception_does_not_swallow_a_forced_stop(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("forcible.py", "swallower")

    outcome = cli_json(
        "stop",
        str(host.tid("swallower")),
        "--force",
        "--wait",
        "10",
        "--pid",
        str(host.pid),
        env=env,
    )

    assert outcome["outcome"] == "exited"
    host.expect("FINALLY swallower")


def test_thread_blocked_in_sleep_is_stopped_when_sleep_returns(
    start_host: StartHost, env: dict[str, str], stub_for
) -> None:  # type: ignore[no-untyped-def]
    host = start_host("forcible.py", "sleeper")
    host.expect("SLEEPING sleeper")

    result = run_cli("stop", str(host.tid("sleeper")), "--force", "--pid", str(host.pid), env=env)

    assert result.returncode == 0, result.stderr
    said = f"forced stop of thread {host.tid('sleeper')} (sleeper) is "
    record = _record(stub_for(host), "sleeper")
    assert record is not None
    if LINE_TRAPS:
        assert result.stdout.startswith(said + "deferred until its next line in forcible.sleeper")
        assert record.stop_state == pb.STOP_STATE_FORCE_DEFERRED
        assert record.force_waits_in.startswith("its next line in forcible.sleeper")
    else:
        assert result.stdout.startswith(said + "pending")
        assert "in sleeper (" in result.stdout
        assert record.stop_state == pb.STOP_STATE_FORCE_PENDING
        assert record.blocked_in.function == "sleeper"
    assert record.forced_at > 0
    assert record.force_delivered_at == 0
    host.expect("FINALLY sleeper")  # delivered when time.sleep returned
    assert "WOKE sleeper" not in host.seen
    stub = stub_for(host)
    wait_until(lambda: _record(stub, "sleeper") is None, what="the sleeper to exit")


def test_thread_blocked_inside_a_list_comprehension_is_stopped_when_it_returns(
    start_host: StartHost, env: dict[str, str], stub_for
) -> None:  # type: ignore[no-untyped-def]
    # From CPython 3.12 an inlined comprehension runs under an exception
    # handler of its own; a line trap set there once waited for a line under
    # that handler, which never came: the stop stayed deferred for good.
    host = start_host("forcible.py", "gatherer")
    stub = stub_for(host)

    def waiting() -> bool:
        record = _record(stub, "gatherer")
        return record is not None and record.activity_detail == "queue.Queue.get"

    wait_until(waiting, what="the gatherer to wait in Queue.get")
    stopped = cli_json(
        "stop", str(host.tid("gatherer")), "--force", "--pid", str(host.pid), env=env
    )
    assert stopped["outcome"] == ("force_deferred" if LINE_TRAPS else "force_pending")

    host.send("feed")
    host.expect("FINALLY gatherer")
    assert "GATHERED" not in host.seen
    wait_until(lambda: _record(stub, "gatherer") is None, what="the gatherer to exit")


def test_critical_section_defers_the_stop_until_it_ends(
    start_host: StartHost, env: dict[str, str], stub_for
) -> None:  # type: ignore[no-untyped-def]
    host = start_host("forcible.py", "critical")
    stub = stub_for(host)

    deferred = cli_json(
        "stop", str(host.tid("critical")), "--force", "--pid", str(host.pid), env=env
    )

    assert deferred["outcome"] == "force_deferred"
    record = _record(stub, "critical")
    assert record is not None
    assert record.in_critical_section
    assert record.stop_state == pb.STOP_STATE_FORCE_DEFERRED
    table = run_cli("list", "--pid", str(host.pid), env=env).stdout
    assert "force-deferred+crit" in table

    host.send("leave")
    host.expect("LEAVING critical")
    host.expect("FINALLY critical")
    assert "AFTER critical" not in host.seen


def test_grace_lets_a_cooperative_thread_exit_without_force(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("forcible.py", "coop")

    outcome = cli_json(
        "stop", str(host.tid("coop")), "--grace", "10", "--pid", str(host.pid), env=env
    )

    assert outcome["outcome"] == "exited"
    assert outcome["forced"] is False
    host.expect("EXITED coop")


def test_grace_forces_a_thread_that_ignores_its_flag(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("forcible.py", "spinner")

    outcome = cli_json(
        "stop",
        str(host.tid("spinner")),
        "--grace",
        "0.3",
        "--wait",
        "10",
        "--pid",
        str(host.pid),
        env=env,
    )

    assert outcome["outcome"] == "exited"
    assert outcome["forced"] is True
    assert outcome["waited_seconds"] >= 0.3
    host.expect("FINALLY spinner")


def test_repeated_forced_stops_raise_one_exception(
    start_host: StartHost, env: dict[str, str], stub_for
) -> None:  # type: ignore[no-untyped-def]
    host = start_host("forcible.py", "catcher")
    host.expect("SLEEPING catcher")
    stub = stub_for(host)
    request = pb.StopThreadRequest(
        thread=pb.ThreadSelector(native_id=host.tid("catcher")), mode=pb.STOP_MODE_FORCE
    )

    first = stub.StopThread(request, timeout=10)
    second = stub.StopThread(request, timeout=10)

    assert first.forced is True
    assert first.outcome == WAITING_OUTCOME
    assert second.forced is False
    assert second.already_requested is True
    host.expect("CAUGHT catcher")
    assert host.expect("DONE catcher") == "DONE catcher caught=1"


def test_stale_identity_is_refused_and_the_new_thread_keeps_running(
    start_host: StartHost, stub_for
) -> None:  # type: ignore[no-untyped-def]
    host = start_host("reuse.py")
    stub = stub_for(host)
    first = _record(stub, "first")
    assert first is not None

    host.send("replace")
    reused = host.expect("REUSED ")
    _, name, ident = reused.split()
    assert int(ident) == first.ident
    for mode in (pb.STOP_MODE_FORCE, pb.STOP_MODE_COOPERATIVE):
        with pytest.raises(grpc.RpcError) as refused:
            stub.StopThread(
                pb.StopThreadRequest(
                    thread=pb.ThreadSelector(ident=first.ident),
                    expected_identity=first.identity,
                    mode=mode,
                ),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "reused" in refused.value.details()
    second = _record(stub, name)
    assert second is not None
    assert second.ident == first.ident
    assert second.identity != first.identity
    assert second.stop_state == pb.STOP_STATE_NONE


def test_protected_and_main_threads_are_never_forced(
    start_host: StartHost, env: dict[str, str], stub_for
) -> None:  # type: ignore[no-untyped-def]
    host = start_host("forcible.py", "coop")
    stub = stub_for(host)
    serve = _record(stub, "threadctl-serve")
    assert serve is not None

    for selector in (pb.ThreadSelector(ident=serve.ident), pb.ThreadSelector(native_id=host.pid)):
        with pytest.raises(grpc.RpcError) as refused:
            stub.StopThread(
                pb.StopThreadRequest(thread=selector, mode=pb.STOP_MODE_FORCE), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    refused_cli = run_cli("stop", str(host.pid), "--force", "--pid", str(host.pid), env=env)
    assert refused_cli.returncode == 5
    assert _record(stub, "MainThread").stop_state == pb.STOP_STATE_NONE  # type: ignore[union-attr]
    assert _record(stub, "threadctl-serve").stop_state == pb.STOP_STATE_NONE  # type: ignore[union-attr]


def test_grace_without_force_is_invalid(start_host: StartHost, stub_for) -> None:  # type: ignore[no-untyped-def]
    host = start_host("forcible.py", "coop")
    stub = stub_for(host)
    selector = pb.ThreadSelector(native_id=host.tid("coop"))

    for request in (
        pb.StopThreadRequest(thread=selector, grace_seconds=1),
        pb.StopThreadRequest(thread=selector, mode=pb.STOP_MODE_FORCE, grace_seconds=-1),
        pb.StopThreadRequest(thread=selector, mode=pb.STOP_MODE_FORCE, grace_seconds=float("nan")),
    ):
        with pytest.raises(grpc.RpcError) as invalid:
            stub.StopThread(request, timeout=10)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _record(stub, "coop").stop_state == pb.STOP_STATE_NONE  # type: ignore[union-attr]


def test_random_forced_stops_leave_no_standard_library_lock_held(env: dict[str, str]) -> None:
    # 50 stops per workload at random moments of threads busy in queues, logging,
    # conditions, semaphores, events, plain locks and a thread pool (lock_stress.py
    # checks every lock, every future and the pool after each). Before the landing
    # rules, 13 to 24 of 60 queue trials left the queue's mutex held.
    seed = random.randrange(1 << 30)  # printed: rerun with `lock_stress.py 350 SEED`
    result, _ = run_host("lock_stress.py", "350", str(seed), env=env, timeout=600)
    print(f"lock stress, seed {seed}: {result['outcomes']}")
    assert result["problems"] == []
    pool = {k.split(":")[1] for k in result["outcomes"] if k.startswith("PoolWork:")}
    assert pool <= {"exited", "task_ended", "moved_on", "refused", "submitter exited"}
    assert sum(result["runs"].values()) == 350


def test_a_forced_stop_never_lands_in_a_del_method(env: dict[str, str]) -> None:
    # Before: most stops of a thread busy in __del__ methods landed there and
    # were swallowed ("Exception ignored in"), thousands of them per run.
    result, stderr = run_host("del_swallow.py", "4", env=env, timeout=120)
    assert "Exception ignored" not in stderr
    print(f"stops of a thread busy in __del__: {result}")
    assert result["problems"] == []
    for outcomes in result["requests"]:
        # force_pending: not raised within the request's 1 s (CI saw it once on
        # a loaded machine, the next request answered exited)
        assert set(outcomes) <= {"exited", "force_deferred", "force_pending"}, outcomes
    if LINE_TRAPS:  # raised at the thread's own line, between two __del__ calls
        assert result["running"] == [False] * 4
