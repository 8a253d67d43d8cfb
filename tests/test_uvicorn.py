"""threadctl's task commands on uvicorn, started as its users start it
(`python -m threadctl -m uvicorn asgi_app:app`): with uvloop and httptools,
which uvicorn picks when `uvicorn[standard]` is installed, and with the
standard asyncio loop and h11 (plain `pip install uvicorn`); and a plain
`uvicorn asgi_app:app`, whose loop is already blocked when the operator
attaches.

uvloop's loop does not record its thread as asyncio's does: the listing
must name it anyway. What the clients of a cancelled and of a force-ended
request see is asserted exactly (uvicorn answers 500 when its app raises),
and the server must serve on after each. The app is tests/hosts/asgi_app.py.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from programs import Program, RawRequest, http_get
from support import HOSTS, cli_json, run_cli, wait_until

OK = (200, b"ok\n")
LOOPS = {
    "uvloop": ("uvloop.Loop", ()),
    "asyncio": (
        "asyncio.unix_events._UnixSelectorEventLoop",
        ("--loop", "asyncio", "--http", "h11"),
    ),
}


class Uvicorn(NamedTuple):
    program: Program
    port: int
    loop_class: str  # the class its loop must be listed with


@pytest.fixture(params=sorted(LOOPS))
def uvicorn(request: pytest.FixtureRequest, env: dict[str, str]) -> Iterator[Uvicorn]:
    """uvicorn under the launcher, serving asgi_app on a port of its choosing."""
    loop_class, options = LOOPS[request.param]
    yield from _serve(env, loop_class, sys.executable, "-m", "threadctl", "-m", "uvicorn", *options)


@pytest.fixture
def plain_uvicorn(env: dict[str, str]) -> Iterator[Uvicorn]:
    """uvicorn's own command, without threadctl."""
    yield from _serve(env, LOOPS["uvloop"][0], str(Path(sys.executable).with_name("uvicorn")))


def _serve(env: dict[str, str], loop_class: str, *command: str) -> Iterator[Uvicorn]:
    program = Program(
        [*command, "asgi_app:app", "--host", "127.0.0.1", "--port", "0"], env, cwd=str(HOSTS)
    )
    try:
        port = int(program.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1))
        yield Uvicorn(program, port, loop_class)
    finally:
        program.close()
        print(f"--- output of uvicorn (exit {program.proc.returncode}) ---")
        print(program.output)


def _tasks(program: Program, env: dict[str, str]) -> dict[str, Any]:
    listing: dict[str, Any] = cli_json("tasks", "--stacks", "--pid", str(program.pid), env=env)
    return listing


def _task_in(program: Program, env: dict[str, str], function: str) -> dict[str, Any]:
    """The task whose stack runs `function` of the app, once one does, with
    the listing it was found in."""

    def find() -> tuple[dict[str, Any], dict[str, Any]] | None:
        listing = _tasks(program, env)
        for task in listing["tasks"]:
            if any(frame["function"] == function for frame in task["stack"]):
                return task, listing
        return None

    task, listing = wait_until(find, what=f"a task of uvicorn running {function}()")
    task["listing"] = listing
    return task  # type: ignore[no-any-return]


def _cancel(program: Program, env: dict[str, str], task_id: int, *options: str) -> dict[str, Any]:
    done = run_cli(
        "cancel", str(task_id), "--wait", "10", "--json", "--pid", str(program.pid), *options,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_uvicorn_requests_are_listed_cancelled_and_force_ended_and_the_server_serves_on(
    uvicorn: Uvicorn, env: dict[str, str]
) -> None:
    program, port, loop_class = uvicorn
    assert http_get(port) == OK

    # A request stuck awaiting a slow backend: listed in the loop of the main
    # thread, awaiting asyncio.sleep, and cancelled; uvicorn answers it 500.
    slow = RawRequest(port, "/slow")
    task = _task_in(program, env, "slow_backend")
    (loop,) = task["listing"]["loops"]
    assert (loop["loop_class"], loop["running"]) == (loop_class, True)
    assert (loop["thread_native_id"], loop["thread_name"]) == (program.pid, "MainThread")
    assert (task["coroutine"], task["awaiting"]) == (
        "RequestResponseCycle.run_asgi",
        "asyncio.sleep",
    )

    cancelled = _cancel(program, env, task["task_id"], "--reason", "backend down")

    assert (cancelled["outcome"], cancelled["task"]["state"]) == ("finished", "done")
    assert slow.reply().startswith(b"HTTP/1.1 500 ")
    program.wait_for(r"CancelledError: cancelled by threadctl \(.*\): backend down$")
    assert http_get(port) == OK

    # A request that never awaits holds the loop: the listing says the loop
    # is blocked by that task; a forced cancel ends only it.
    spinning = RawRequest(port, "/spin")
    task = _task_in(program, env, "spin")
    blocked = wait_until(
        lambda: (listing := _tasks(program, env))["loops"][0]["stalled_seconds"] > 0 and listing,
        what="the loop reported blocked",
    )
    assert blocked["loops"][0]["current_task_id"] == task["task_id"]
    table = run_cli("tasks", "--pid", str(program.pid), env=env).stdout
    assert "BLOCKED for" in table, table
    assert (
        f"by task {task['task_id']} ({task['name']}) (`threadctl cancel {task['task_id']} --force`"
        in table
    )

    forced = _cancel(program, env, task["task_id"], "--force")

    assert (forced["outcome"], forced["task"]["state"]) == ("force_ended", "done")
    assert spinning.reply().startswith(b"HTTP/1.1 500 ")
    program.wait_for(r"ForcedStop: forced stop")
    assert program.count("Exception in ASGI application") == 2
    assert http_get(port) == OK
    after = wait_until(
        lambda: (listing := _tasks(program, env))["loops"][0]["stalled_seconds"] == 0 and listing,
        what="the loop turning again",
    )
    assert [t["coroutine"] for t in after["tasks"]] == ["Server.serve"]
    main = cli_json("show", str(program.pid), "--pid", str(program.pid), env=env)
    assert main["stop_state"] == "none"  # no stop request left on the loop's thread

    slow.close()
    spinning.close()
    assert program.end(signal.SIGINT) == 0  # Ctrl-C: uvicorn shuts down and exits 0
    runtime = Path(env["XDG_RUNTIME_DIR"]) / "threadctl"
    assert sorted(p.name for p in runtime.glob(f"{program.pid}.*")) == []


def test_a_plain_uvicorn_whose_loop_is_blocked_is_attached_and_its_request_force_ended(
    plain_uvicorn: Uvicorn, env: dict[str, str]
) -> None:
    """The emergency: a uvicorn without threadctl stops answering because a
    handler never awaits. `threadctl attach` reaches it anyway (the loop's
    thread holds the GIL only a switch interval at a time), the listing
    names the task from the loop's blocked thread, and a forced cancel ends
    only that request."""
    program, port, loop_class = plain_uvicorn
    assert http_get(port) == OK
    # uvloop records no thread, and idle, no task step shows it: a one-shot says so.
    idle = run_cli("tasks", "--attach", "--pid", str(program.pid), env=env)
    assert idle.returncode == 0, idle.stderr
    assert "(Loop) in an unknown thread: turning" in idle.stdout
    assert "Server.serve" in idle.stdout
    spinning = RawRequest(port, "/spin")
    wait_until(
        lambda: any(
            frame["function"] == "spin"
            for thread in cli_json("list", "--stacks", "--attach", "--pid", str(program.pid),
                                   env=env)["threads"]
            for frame in thread["stack"]
        ),
        what="the loop's thread in spin(), seen by a one-shot listing",
    )  # fmt: skip
    # A one-shot task listing finds the loop blocked and the task it runs.
    one_shot = cli_json("tasks", "--attach", "--pid", str(program.pid), env=env)
    (seen,) = one_shot["loops"]
    assert (seen["loop_class"], seen["thread_native_id"]) == (loop_class, program.pid)
    assert seen["stalled_seconds"] > 0
    running = [t for t in one_shot["tasks"] if t["task_id"] == seen["current_task_id"]]
    assert [t["state"] for t in running] == ["running"]

    attached = run_cli("attach", str(program.pid), env=env)

    assert attached.returncode == 0, attached.stdout + attached.stderr
    task = _task_in(program, env, "spin")
    blocked = wait_until(
        lambda: (listing := _tasks(program, env))["loops"][0]["stalled_seconds"] > 0 and listing,
        what="the loop reported blocked",
    )
    (loop,) = blocked["loops"]
    assert (loop["loop_class"], loop["current_task_id"]) == (loop_class, task["task_id"])
    assert (loop["thread_native_id"], loop["thread_name"]) == (program.pid, "MainThread")

    forced = _cancel(program, env, task["task_id"], "--force")

    assert forced["outcome"] == "force_ended"
    assert spinning.reply().startswith(b"HTTP/1.1 500 ")
    assert http_get(port) == OK
    spinning.close()
    assert program.end(signal.SIGINT) == 0
