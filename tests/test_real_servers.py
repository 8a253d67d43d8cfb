"""threadctl on the servers people run, started as their users start them and
driven through the real CLI: waitress under `python -m threadctl`, and
gunicorn's gthread workers, each with a threadctl server of its own
(post_fork) or reached by attaching. What a forced stop does to the request,
its client's connection, the pool and the process is asserted exactly; the
README's "Real servers" section says the same, from these tests.

The app (tests/hosts/wsgi_app.py) spins in pure Python on `/spin`. Every
server runs one worker thread, so each forced stop hits the same, reused
thread. Forked workers are also where CPython keeps the master's TID on the
child's main thread: the listings must show the kernel's.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from programs import Program, RawRequest, http_get
from support import HOSTS, cli_json, run_cli, wait_until

PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
OK = (200, b"ok\n")

Start = Callable[..., Program]


@pytest.fixture
def start(env: dict[str, str]) -> Iterator[Start]:
    """Start programs in tests/hosts; all are ended after the test, and their
    output is printed (pytest shows it when the test failed)."""
    started: list[Program] = []

    def start_program(*argv: str) -> Program:
        started.append(Program(list(argv), env, cwd=str(HOSTS)))
        return started[-1]

    yield start_program
    for program in started:
        program.close()
        print(f"--- output of {program.argv} (exit {program.proc.returncode}) ---")
        print(program.output)


def start_waitress(start: Start) -> tuple[Program, int]:
    """waitress with one worker thread, under the threadctl launcher; its port."""
    program = start(
        PYTHON,
        "-m",
        "threadctl",
        "-m",
        "waitress",
        "--listen=127.0.0.1:0",
        "--threads=1",
        "wsgi_app:app",
    )
    port = int(program.wait_for(r"Serving on http://127\.0\.0\.1:(\d+)").group(1))
    return program, port


def start_gunicorn(start: Start, *options: str) -> tuple[Program, int, int]:
    """gunicorn, one gthread worker process with one thread; its port and worker PID."""
    program = start(
        GUNICORN,
        *options,
        "-k",
        "gthread",
        "--threads",
        "1",
        "-w",
        "1",
        "-b",
        "127.0.0.1:0",
        "wsgi_app:app",
    )
    port = int(program.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
    worker = int(program.wait_for(r"Booting worker with pid: (\d+)").group(1))
    return program, port, worker


def spinning_thread(pid: int, env: dict[str, str], *one_shot: str) -> dict[str, Any]:
    """The listing record of the thread that runs wsgi_app.spin, once one does."""

    def find() -> dict[str, Any] | None:
        listing = cli_json("list", "--stacks", "--pid", str(pid), *one_shot, env=env)
        return next(
            (t for t in listing["threads"] if any(f["function"] == "spin" for f in t["stack"])),
            None,
        )

    found: dict[str, Any] = wait_until(find, what=f"a thread of process {pid} running spin()")
    return found


def force_stop(tid: int, pid: int, env: dict[str, str], *one_shot: str) -> dict[str, Any]:
    """`threadctl stop TID --force --wait 5`, which must end the thread's task (exit 9)."""
    stopped = run_cli(
        "stop", str(tid), "--force", "--wait", "5", "--json", "--pid", str(pid), *one_shot, env=env
    )
    assert stopped.returncode == 9, stopped.stdout + stopped.stderr
    answer: dict[str, Any] = json.loads(stopped.stdout)
    assert (answer["outcome"], answer["forced"]) == ("task_ended", True)
    # The request is over: the worker can be forced again on its next runaway.
    assert answer["thread"]["stop_state"] == "none"
    return answer


def socket_files(env: dict[str, str], pid: int) -> list[str]:
    """The threadctl socket and token files of process `pid` that exist."""
    directory = Path(env["XDG_RUNTIME_DIR"]) / "threadctl"
    return sorted(p.name for p in directory.glob(f"{pid}.*"))


def assert_kernel_tid_of_main(pid: int, env: dict[str, str], *one_shot: str) -> None:
    """In forked process `pid`, the main thread is listed with its real TID
    (the PID) and a CPU time, and `show PID` finds it."""
    listing = cli_json("list", "--pid", str(pid), *one_shot, env=env)
    main = next(t for t in listing["threads"] if t["main"])
    assert main["native_id"] == pid
    assert isinstance(main["cpu_seconds"], int | float)
    table = run_cli("list", "--pid", str(pid), *one_shot, env=env)
    assert re.search(rf"^\s*{pid}\s+MainThread\s+\d+\.\d\d\s", table.stdout, re.M), table.stdout
    shown = run_cli("show", str(pid), "--pid", str(pid), "--json", *one_shot, env=env)
    assert shown.returncode == 0, shown.stderr
    assert (json.loads(shown.stdout)["native_id"], json.loads(shown.stdout)["main"]) == (pid, True)


# ---------------------------------------------------------------- waitress


def test_waitress_forced_stops_end_the_request_and_the_worker_serves_on(
    start: Start, env: dict[str, str]
) -> None:
    """Twice on the same worker thread: `task_ended` (exit 9), waitress logs
    the exception and answers the next requests; the stopped request's client
    gets no answer, and its connection stays open until waitress exits."""
    program, port = start_waitress(start)
    assert http_get(port) == OK
    stopped_clients = []
    workers = set()
    for _ in range(2):
        client = RawRequest(port, "/spin")
        stopped_clients.append(client)
        thread = spinning_thread(program.pid, env)
        workers.add((thread["native_id"], thread["name"]))

        answer = force_stop(thread["native_id"], program.pid, env)

        assert answer["thread"]["native_id"] == thread["native_id"]
        assert http_get(port) == OK  # the same worker answers the next request
        # ...while the stopped request's client has had nothing, not even a close.
        assert client.received_so_far() is None
    assert len(workers) == 1  # one (reused) worker thread
    assert workers.pop()[1] == "waitress-0"
    assert program.count("ERROR:waitress:Exception when servicing") == 2
    assert program.count("ForcedStop: forced stop") == 2
    # Done sending, the client half-closes: waitress does not read a
    # connection whose request is unfinished, so it never closes it either.
    stopped_clients[0].sock.shutdown(socket.SHUT_WR)
    assert http_get(port) == OK
    assert stopped_clients[0].received_so_far() is None

    assert program.end(signal.SIGINT) == 0  # Ctrl-C: KeyboardInterrupt, a normal exit

    for client in stopped_clients:
        assert client.reply() == b""  # closed at exit, never answered
        client.close()
    assert socket_files(env, program.pid) == []


def test_waitress_ended_by_sigterm_leaves_a_socket_file_no_client_uses(
    start: Start, env: dict[str, str]
) -> None:
    """SIGTERM (systemd, docker stop) ends waitress by the signal's default
    action: no Python code runs, so threadctl's files stay behind, where
    clients recognise them as stale (the next install() at that PID replaces
    them)."""
    program, port = start_waitress(start)
    assert http_get(port) == OK
    assert cli_json("ps", env=env)[0]["pid"] == program.pid

    assert program.end(signal.SIGTERM) == -signal.SIGTERM

    assert socket_files(env, program.pid) == [f"{program.pid}.sock", f"{program.pid}.token"]
    assert cli_json("ps", env=env) == []
    assert run_cli("list", "--pid", str(program.pid), env=env).returncode == 3


# ---------------------------------------------------------------- gunicorn


def test_gunicorn_gthread_worker_with_its_own_server_survives_forced_stops(
    start: Start, env: dict[str, str]
) -> None:
    """post_fork installs a server in the worker (tests/hosts/gunicorn_conf.py).
    Twice on the same pool thread: `task_ended`, the client's connection is
    closed without an answer, the worker process lives on (a BaseException
    crossing fs.result() used to end it) and answers; the idle pool thread is
    refused; SIGTERM shuts gunicorn down cleanly."""
    program, port, worker = start_gunicorn(start, "-c", "gunicorn_conf.py")
    wait_until(
        lambda: run_cli("list", "--pid", str(worker), env=env).returncode == 0,
        what="the worker's threadctl server",
    )
    assert [p["pid"] for p in cli_json("ps", env=env)] == [worker]  # none in the master
    assert_kernel_tid_of_main(worker, env)
    pool_threads = set()
    for _ in range(2):
        client = RawRequest(port, "/spin")
        thread = spinning_thread(worker, env)
        pool_threads.add(thread["native_id"])

        force_stop(thread["native_id"], worker, env)

        assert client.reply() == b""  # closed by gunicorn, no status line
        client.close()
        assert http_get(port) == OK
    assert len(pool_threads) == 1
    (pool_thread,) = pool_threads
    idle = run_cli("stop", str(pool_thread), "--force", "--pid", str(worker), env=env)
    assert idle.returncode == 5, idle.stderr
    assert "idle pool worker" in idle.stderr
    assert http_get(port) == OK  # nothing was queued for its next task
    assert program.count("Booting worker") == 1  # the same worker process throughout
    # gunicorn logs nothing about a stopped request.
    assert "Traceback" not in program.output
    assert "[ERROR]" not in program.output

    assert program.end(signal.SIGTERM) == 0

    assert program.count(f"Worker exiting (pid: {worker})") == 1
    assert socket_files(env, worker) == []


def test_gunicorn_worker_without_threadctl_is_listed_and_forced_one_shot_and_after_attach(
    start: Start, env: dict[str, str]
) -> None:
    """A plain gunicorn: one-shot listings show the worker's real TIDs; a
    one-shot forced stop of a pool thread ends just the request (the job makes
    its future fail with TaskStopped, as threadctl's server does), and after
    `threadctl attach WORKER` the server's forced stop does the same."""
    program, port, worker = start_gunicorn(start)
    assert_kernel_tid_of_main(worker, env, "--attach")
    for one_shot in (("--attach",), ()):
        if not one_shot:
            attached = run_cli("attach", str(worker), env=env)
            assert attached.returncode == 0, attached.stderr
        client = RawRequest(port, "/spin")
        thread = spinning_thread(worker, env, *one_shot)

        force_stop(thread["native_id"], worker, env, *one_shot)

        assert client.reply() == b""
        client.close()
        assert http_get(port) == OK
    detached = run_cli("detach", str(worker), env=env)
    assert detached.returncode == 0, detached.stderr
    assert program.count("Booting worker") == 1
    assert program.end(signal.SIGTERM) == 0
    assert socket_files(env, worker) == []
