"""asyncio tasks in a real asyncio server (tests/hosts/asyncio_app.py, an
asyncio.start_server echo server started with asyncio.run): listing every
loop's tasks with what each awaits, cancelling one, finding the task that
blocks a loop and ending only that task."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support import DEADLINE, THREADCTL, Host, cli_json, readme_blocks, run_cli, shape, wait_until

StartHost = Callable[..., Host]
TASK_GROUPS = sys.version_info >= (3, 11)


@pytest.fixture
def app(start_host: StartHost) -> Host:
    return start_host("asyncio_app.py")


@pytest.fixture
def client_of(app: Host) -> Iterator[Callable[[], socket.socket]]:
    """Connections to the host's echo server, closed after the test."""
    opened: list[socket.socket] = []

    def connect() -> socket.socket:
        opened.append(socket.create_connection(("127.0.0.1", app.ready["port"]), timeout=DEADLINE))
        return opened[-1]

    yield connect
    for connection in opened:
        connection.close()


def _tasks(app: Host, env: dict[str, str], *args: str) -> dict[str, Any]:
    listing: dict[str, Any] = cli_json("tasks", "--pid", str(app.pid), *args, env=env)
    return listing


def _by_name(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {task["name"]: task for task in listing["tasks"]}


def _handler(app: Host, env: dict[str, str]) -> dict[str, Any]:
    """The task serving the one connected client, once it waits for a line."""

    def found() -> dict[str, Any] | None:
        return next(
            (
                t
                for t in _tasks(app, env)["tasks"]
                if t["coroutine"] == "serve" and t["awaiting"] == "asyncio.StreamReader.readline"
            ),
            None,
        )

    handler: dict[str, Any] = wait_until(found, what="the handler to wait for its client")
    return handler


def _echo(connection: socket.socket, line: bytes) -> bytes:
    connection.sendall(line)
    return connection.recv(1024)


def test_tasks_of_every_loop_with_what_each_awaits(
    app: Host, env: dict[str, str], client_of: Callable[[], socket.socket]
) -> None:
    client_of()
    handler = _handler(app, env)
    listing = _tasks(app, env, "--stacks")
    tasks = _by_name(listing)

    loops = {loop["thread_native_id"]: loop for loop in listing["loops"]}
    assert set(loops) == {app.tid("MainThread"), app.tid("side-loop")}
    main_loop, side_loop = loops[app.tid("MainThread")], loops[app.tid("side-loop")]
    assert all(loop["running"] and loop["stalled_seconds"] == 0 for loop in loops.values())
    assert tasks["stubborn"]["awaiting"] == "asyncio.sleep"
    assert tasks["stubborn"]["state"] == "pending"
    assert tasks["py-task"]["awaiting"] == "asyncio.Event.wait"  # the pure-Python Task
    assert tasks["side-ticker"]["loop_id"] == side_loop["loop_id"]
    side_main = next(t for t in listing["tasks"] if t["coroutine"] == "side_loop.<locals>.side")
    assert side_main["awaiting"] == f"task {tasks['side-ticker']['task_id']}"
    assert tasks["side-ticker"]["awaited_by"] == [side_main["task_id"]]
    if TASK_GROUPS:
        supervisor = tasks["supervisor"]
        assert supervisor["awaiting"] == "asyncio.TaskGroup.__aexit__"
        for name in ("worker-1", "worker-2"):
            assert tasks[name]["awaiting"] == "asyncio.Queue.get"
            assert tasks[name]["awaited_by"] == [supervisor["task_id"]]
    functions = [frame["function"] for frame in handler_stack(listing, handler["task_id"])]
    assert functions[0] == "serve"  # the await chain, innermost last
    assert "StreamReader.readline" in functions or "readline" in functions  # 3.10: no qualname
    assert all(t["loop_id"] in (main_loop["loop_id"], side_loop["loop_id"]) for t in tasks.values())

    only_side = _tasks(app, env, "--thread", str(app.tid("side-loop")))
    assert [loop["loop_id"] for loop in only_side["loops"]] == [side_loop["loop_id"]]
    assert {t["name"] for t in only_side["tasks"]} == {"side-ticker", side_main["name"]}
    table = run_cli("tasks", "--pid", str(app.pid), env=env)
    assert table.returncode == 0, table.stderr
    assert f"in thread {app.tid('side-loop')} (side-loop): turning" in table.stdout
    assert "asyncio.StreamReader.readline" in table.stdout

    # One-shot in a process with threadctl: its own listing, with its server's ids.
    one_shot = _tasks(app, env, "--attach")
    assert {t["name"]: t["task_id"] for t in one_shot["tasks"]}.items() >= {
        name: tasks[name]["task_id"] for name in ("stubborn", "py-task", "side-ticker")
    }.items()
    assert not any("addresses" in note for note in one_shot["process"]["notes"])


def test_dump_shows_each_loop_and_its_tasks_under_the_thread_that_runs_it(
    app: Host, env: dict[str, str]
) -> None:
    listing = _tasks(app, env)
    ticker = _by_name(listing)["side-ticker"]
    side_loop = next(loop for loop in listing["loops"] if loop["loop_id"] == ticker["loop_id"])

    dump = run_cli("dump", "--pid", str(app.pid), env=env)

    assert dump.returncode == 0, dump.stderr
    threads = re.split(r"\n\n(?=Thread )", dump.stdout)
    (side,) = [block for block in threads if block.startswith(f"Thread {app.tid('side-loop')} ")]
    lines = side.splitlines()
    assert lines[0].endswith('"side-loop"')
    at = lines.index(f"    loop {side_loop['loop_id']} (_UnixSelectorEventLoop) in thread"
                     f" {app.tid('side-loop')} (side-loop): turning")  # fmt: skip
    task_at = lines.index(
        f'    Task {ticker["task_id"]} (pending, awaiting asyncio.sleep): "side-ticker"'
    )
    assert task_at > at
    assert lines[task_at + 1].startswith("        sleep (")  # its coroutine is asyncio.sleep's
    (main,) = [block for block in threads if block.startswith(f"Thread {app.tid('MainThread')} ")]
    assert '"stubborn"' in main
    assert '"side-ticker"' not in main

    as_json = cli_json("dump", "--pid", str(app.pid), env=env)
    assert {loop["loop_id"] for loop in as_json["loops"]} == {
        loop["loop_id"] for loop in listing["loops"]
    }
    assert {"stubborn", "side-ticker"} <= {task["name"] for task in as_json["tasks"]}
    assert all(task["stack"] for task in as_json["tasks"])
    assert any(thread["name"] == "side-loop" for thread in as_json["threads"])


def handler_stack(listing: dict[str, Any], task_id: int) -> list[dict[str, Any]]:
    stack: list[dict[str, Any]] = next(t for t in listing["tasks"] if t["task_id"] == task_id)[
        "stack"
    ]
    return stack


def test_cancel_ends_the_handler_its_client_sees_the_close_and_the_server_serves_on(
    app: Host, env: dict[str, str], client_of: Callable[[], socket.socket]
) -> None:
    slow = client_of()
    handler = _handler(app, env)

    cancelled = cli_json(
        "cancel", str(handler["task_id"]), "--wait", "10", "--reason", "slow client",
        "--pid", str(app.pid), env=env,
    )  # fmt: skip

    assert cancelled["outcome"] == "cancelled"
    assert cancelled["task"]["task_id"] == handler["task_id"]
    assert cancelled["task"]["state"] == "done"
    app.expect("HANDLER closed")
    assert slow.recv(1024) == b""  # the handler's finally closed the connection
    audit = json.loads(app.expect("AUDIT ")[len("AUDIT ") :])
    assert audit["action"] == "cancel"
    assert audit["task_id"] == handler["task_id"]
    assert audit["outcome"] == "cancelled"
    assert audit["reason"] == "slow client"
    assert _echo(client_of(), b"still here\n") == b"still here\n"
    assert "stubborn" in _by_name(_tasks(app, env))

    again = run_cli("cancel", str(handler["task_id"]), "--pid", str(app.pid), env=env)
    assert again.returncode == 4
    assert f"no pending task {handler['task_id']}" in again.stderr

    (entry,) = cli_json("history", "--pid", str(app.pid), env=env)["entries"]  # not the refusal
    assert (entry["action"], entry["forced"], entry["task_id"]) == (
        "cancel",
        False,
        handler["task_id"],
    )
    assert (entry["coroutine"], entry["outcome"], entry["reason"]) == (
        "serve",
        "cancelled",
        "slow client",
    )
    assert (entry["how"], entry["ended_observed"]) == ("cancelled", False)
    assert entry["requested_at"] <= entry["ended_at"] <= entry["requested_at"] + 10
    assert entry["requested_by"].startswith("unix socket")


def test_a_task_that_catches_the_cancellation_is_reported_as_ignoring_it(
    app: Host, env: dict[str, str]
) -> None:
    stubborn = _by_name(_tasks(app, env))["stubborn"]

    answer = run_cli(
        "cancel", str(stubborn["task_id"]), "--wait", "1", "--json", "--pid", str(app.pid),
        env=env,
    )  # fmt: skip

    assert answer.returncode == 6, answer.stderr
    result = json.loads(answer.stdout)
    assert result["outcome"] == "ignored"
    (entry,) = cli_json("history", "--pid", str(app.pid), env=env)["entries"]
    assert (entry["name"], entry["outcome"], entry["how"]) == ("stubborn", "ignored", "")
    table = run_cli("history", "--pid", str(app.pid), env=env).stdout
    assert re.search(
        rf"cancel +task {stubborn['task_id']} \(stubborn: stubborn\) +ignored +runs on ", table
    ), table
    assert result["task"]["awaiting"] == "asyncio.sleep"
    app.expect("STUBBORN caught")
    assert _by_name(_tasks(app, env))["stubborn"]["task_id"] == stubborn["task_id"]
    text = run_cli(
        "cancel", str(stubborn["task_id"]), "--wait", "1", "--pid", str(app.pid), env=env
    )
    assert text.returncode == 6
    assert "caught the cancellation and goes on (it awaits asyncio.sleep)" in text.stdout


def test_bad_task_ids_and_waits_are_refused_with_their_exit_codes(
    app: Host, env: dict[str, str]
) -> None:
    pid = str(app.pid)
    unknown = run_cli("cancel", "987654321", "--pid", pid, env=env)
    zero = run_cli("cancel", "0", "--pid", pid, env=env)
    negative = run_cli("cancel", "3", "--wait", "-1", "--pid", pid, env=env)
    no_loop = run_cli("tasks", "--thread", "4294967295", "--pid", pid, env=env)

    assert unknown.returncode == 4
    assert "threadctl: no pending task 987654321" in unknown.stderr
    assert zero.returncode == 2
    assert "must be a positive number, not 0" in zero.stderr
    assert negative.returncode == 2
    assert no_loop.returncode == 4
    assert "no event loop with pending tasks runs in thread 4294967295" in no_loop.stderr
    for result in (unknown, zero, negative, no_loop):
        assert "Traceback" not in result.stderr


def test_a_blocked_loop_names_its_task_and_a_forced_cancel_ends_only_that_task(
    app: Host, env: dict[str, str], client_of: Callable[[], socket.socket]
) -> None:
    connection = client_of()
    assert _echo(connection, b"before\n") == b"before\n"
    app.send("block")
    app.expect("BLOCKING")
    main_tid = app.tid("MainThread")

    def blocked() -> dict[str, Any] | None:
        listing = _tasks(app, env)
        loop = next(loop for loop in listing["loops"] if loop["thread_native_id"] == main_tid)
        return listing if loop["stalled_seconds"] > 0 else None

    listing = wait_until(blocked, what="the main loop to be reported as blocked")
    listed_at = time.monotonic()
    loop = next(loop for loop in listing["loops"] if loop["thread_native_id"] == main_tid)
    blocker = _by_name(listing)["blocker"]
    assert loop["current_task_id"] == blocker["task_id"]
    assert blocker["state"] == "running"
    table = run_cli("tasks", "--pid", str(app.pid), env=env).stdout
    relisted_at = time.monotonic()
    later = blocked()
    assert later is not None
    later_loop = next(loop for loop in later["loops"] if loop["thread_native_id"] == main_tid)
    # The first probe's wait, grown by at least the time between the listings
    # (a fresh probe each listing would report its own 0.1 s each time).
    assert later_loop["stalled_seconds"] >= loop["stalled_seconds"] + (relisted_at - listed_at)
    assert "BLOCKED for " in table
    assert f"by task {blocker['task_id']} (blocker)" in table
    assert f"`threadctl cancel {blocker['task_id']} --force` ends it" in table
    if TASK_GROUPS:  # the README shows this host's table (3.10 has no TaskGroup)
        (example,) = readme_blocks("$ threadctl tasks --pid 3569")
        assert shape(example.splitlines()[2:]) <= shape(table.splitlines()[1:])

    not_running = run_cli(
        "cancel", str(_by_name(listing)["stubborn"]["task_id"]), "--force", "--pid", str(app.pid),
        env=env,
    )  # fmt: skip
    assert not_running.returncode == 5
    assert "is not running a step now (it waits at an await)" in not_running.stderr

    forced = cli_json(
        "cancel", str(blocker["task_id"]), "--force", "--wait", "10", "--reason", "hogs the loop",
        "--pid", str(app.pid), env=env,
    )  # fmt: skip

    assert forced["outcome"] == "force_ended"
    assert forced["task"]["state"] == "done"
    app.expect("BLOCKER ended ForcedStop")
    assert _echo(connection, b"after\n") == b"after\n"  # the loop serves again
    after = _tasks(app, env)
    assert "blocker" not in _by_name(after)
    assert "stubborn" in _by_name(after)
    assert all(loop["stalled_seconds"] == 0 for loop in after["loops"])
    main = next(t for t in cli_json("list", "--pid", str(app.pid), env=env)["threads"] if t["main"])
    assert main["stop_state"] == "none"  # the loop's thread was not asked to stop
    records = [json.loads(app.expect("AUDIT ")[len("AUDIT ") :]) for _ in range(2)]
    assert [(r["action"], r["outcome"], r["forced"]) for r in records] == [
        ("cancel", "refused", True),
        ("cancel", "force_ended", True),
    ]
    (entry,) = cli_json("history", "--pid", str(app.pid), env=env)["entries"]
    assert (entry["task_id"], entry["forced"], entry["outcome"]) == (
        blocker["task_id"],
        True,
        "force_ended",
    )
    assert (entry["how"], entry["reason"]) == ("raised ForcedStop: forced stop", "hogs the loop")


def test_a_forced_cancel_of_a_task_that_awaits_before_it_can_land_raises_nothing(
    app: Host, env: dict[str, str], client_of: Callable[[], socket.socket]
) -> None:
    # The finalizer's step blocks the loop in a __del__ (no forced stop lands
    # there) and, once it returns, awaits on the same line: the stop never
    # finds the task's own code running, so it is over with nothing raised.
    connection = client_of()
    app.send("finalize")
    app.expect("FINALIZING")
    finalizer = _by_name(_tasks(app, env))["finalizer"]
    assert finalizer["state"] == "running"
    forcing = subprocess.Popen(
        [THREADCTL, "cancel", str(finalizer["task_id"]), "--force", "--wait", "30", "--json",
         "--pid", str(app.pid)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def deferred() -> bool:
            listing = cli_json("list", "--pid", str(app.pid), env=env)
            main = next(t for t in listing["threads"] if t["main"])
            return bool(main["stop_state"] == "force_deferred")

        wait_until(deferred, what="the forced stop to wait for the __del__ to return")
        app.send("release")
        out, err = forcing.communicate(timeout=DEADLINE)
    finally:
        forcing.kill()
    assert forcing.returncode == 9, err
    assert json.loads(out)["outcome"] == "moved_on"
    assert _echo(connection, b"after\n") == b"after\n"  # the loop serves again
    main = next(t for t in cli_json("list", "--pid", str(app.pid), env=env)["threads"] if t["main"])
    assert main["stop_state"] == "none"
    assert _by_name(_tasks(app, env))["finalizer"]["awaiting"] == "asyncio.sleep"

    cancelled = cli_json(
        "cancel", str(finalizer["task_id"]), "--wait", "10", "--pid", str(app.pid), env=env
    )  # a plain cancel reaches it at its await
    assert cancelled["outcome"] == "cancelled"
    app.expect("FINALIZER CancelledError")
