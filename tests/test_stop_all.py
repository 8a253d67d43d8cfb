"""Stopping every thread: stop_all, `threadctl stop --all`, and the opt-in
SIGINT/SIGTERM handling, with real processes and real signals."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

from support import DEADLINE, Host, cli_json, run_cli, wait_until

StartHost = Callable[..., Host]


def with_sigint(disposition: str) -> list[str]:
    """Interpreter arguments that start the host with SIGINT at `disposition`
    ("SIG_DFL", "SIG_IGN"), set by a tiny program that then execs it.

    A terminal gives a program SIG_DFL, and Python turns that into
    KeyboardInterrupt. A non-interactive shell starts background jobs with
    SIGINT ignored, Popen and exec keep it so, and threadctl rightly leaves an
    ignored signal alone: without this, a suite started as `make test &` from
    a script fails every SIGINT test.
    """
    return ["-c", _EXEC_WITH_SIGINT, disposition]


_EXEC_WITH_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, getattr(signal, sys.argv[1]));"
    " os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)
ON_SIGNALS = ["-m", "threadctl", "--stop-on-signals", "INT,TERM"]
LAUNCH = [*with_sigint("SIG_DFL"), *ON_SIGNALS]


def _stop_state(host: Host, env: dict[str, str], name: str) -> str:
    threads = cli_json("list", "--pid", str(host.pid), env=env)["threads"]
    return next(t["stop_state"] for t in threads if t["name"] == name)


def test_sigint_stops_cooperative_workers_and_exits_like_keyboardinterrupt(
    start_host: StartHost,
) -> None:
    host = start_host("sigprog.py", "coop", "coop", launcher=[*LAUNCH, "--grace", "10"])

    host.proc.send_signal(signal.SIGINT)

    assert host.proc.wait(timeout=DEADLINE) == -signal.SIGINT
    host.expect("FINALLY coop-0")
    host.expect("FINALLY coop-1")


def test_sigterm_stops_workers_then_terminates_as_sigterm_would(start_host: StartHost) -> None:
    # The host's stdin reader (a daemon thread) never exits: stop_all waits for
    # it too, until the grace period ends; then SIGTERM's default action.
    host = start_host("sigprog.py", "coop", launcher=[*LAUNCH, "--grace", "2"])

    host.proc.send_signal(signal.SIGTERM)

    assert host.proc.wait(timeout=DEADLINE) == -signal.SIGTERM
    host.expect("FINALLY coop-0")


def test_second_sigint_during_the_grace_forces_at_once(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("sigprog.py", "coop", "stubborn", launcher=[*LAUNCH, "--grace", "600"])

    host.proc.send_signal(signal.SIGINT)
    host.expect("FINALLY coop-0")  # the cooperative worker is gone; the stubborn one spins
    wait_until(lambda: _stop_state(host, env, "stubborn-1") == "requested", what="stop requested")
    host.proc.send_signal(signal.SIGINT)

    assert host.proc.wait(timeout=DEADLINE) == -signal.SIGINT  # well before the 600 s grace
    host.expect("FINALLY stubborn-1")


def test_without_the_option_no_signal_handler_is_installed(start_host: StartHost) -> None:
    plain = start_host("sigprog.py", "coop", launcher=[*with_sigint("SIG_DFL"), "-m", "threadctl"])
    chained = start_host("sigprog.py", "coop", launcher=LAUNCH)

    assert plain.ready["handlers"] == {
        "SIGINT": str(signal.default_int_handler),
        "SIGTERM": str(signal.SIG_DFL),
    }
    assert "SignalStopper" in chained.ready["handlers"]["SIGINT"]


def test_sigterm_stops_while_the_main_thread_waits_in_c_code_that_retries_on_eintr(
    start_host: StartHost,
) -> None:
    # os.system() is C system() in a waitpid loop: no Python handler can run
    # until the shell ends, which it never does by itself here.
    host = start_host("sigprog.py", "--in-c", "coop", launcher=[*LAUNCH, "--grace", "2"])
    host.expect("IN C")

    host.proc.send_signal(signal.SIGTERM)

    assert host.proc.wait(timeout=DEADLINE) == -signal.SIGTERM
    host.expect("FINALLY coop-0")


def test_an_ignored_sigint_is_left_alone_and_sigterm_still_stops(start_host: StartHost) -> None:
    launcher = [*with_sigint("SIG_IGN"), *ON_SIGNALS, "--grace", "2"]
    host = start_host("sigprog.py", "coop", launcher=launcher)
    assert host.ready["handlers"]["SIGINT"] == str(signal.SIG_IGN)
    assert "SignalStopper" in host.ready["handlers"]["SIGTERM"]

    host.proc.send_signal(signal.SIGINT)  # discarded by the kernel
    host.proc.send_signal(signal.SIGTERM)

    assert host.proc.wait(timeout=DEADLINE) == -signal.SIGTERM  # SIGTERM was the first signal
    host.expect("FINALLY coop-0")


def test_a_wakeup_fd_set_before_install_still_gets_its_signals(start_host: StartHost) -> None:
    host = start_host("sigchain.py", "asyncio-first")
    assert host.ready["wakeup"] != ["asyncio"]  # threadctl's is in front

    host.proc.send_signal(signal.SIGUSR1)
    host.expect("USR1")  # asyncio's handler ran: its wakeup fd got the byte
    host.proc.send_signal(signal.SIGTERM)

    assert host.proc.wait(timeout=DEADLINE) == -signal.SIGTERM
    host.expect("FINALLY coop")


def test_close_puts_the_previous_wakeup_fd_and_handler_back(start_host: StartHost) -> None:
    host = start_host("sigchain.py", "asyncio-first")

    host.send("close")

    closed = json.loads(host.expect("CLOSED ")[len("CLOSED ") :])
    assert closed == {"SIGTERM": str(signal.SIG_DFL), "wakeup": ["asyncio"]}
    host.proc.send_signal(signal.SIGUSR1)
    host.expect("USR1")


def test_a_wakeup_fd_set_after_install_takes_over_and_sigterm_still_stops(
    start_host: StartHost,
) -> None:
    host = start_host("sigchain.py", "asyncio-after", launcher=[*LAUNCH, "--grace", "2"])
    assert host.ready["wakeup"] == ["asyncio"]  # threadctl does not fight for it

    host.proc.send_signal(signal.SIGUSR1)
    host.expect("USR1")
    host.proc.send_signal(signal.SIGTERM)

    assert host.proc.wait(timeout=DEADLINE) == -signal.SIGTERM
    host.expect("FINALLY coop")


def test_a_forked_child_gets_the_previous_handling_back_and_its_signals_stay_its_own(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("sigchain.py", "fork", launcher=[*LAUNCH, "--grace", "10"])
    assert "SignalStopper" in host.ready["SIGTERM"]

    host.send("fork")
    child = json.loads(host.expect("CHILD ")[len("CHILD ") :])
    pid = child.pop("pid")
    assert child == {"SIGTERM": str(signal.SIG_DFL), "wakeup": [-1]}
    os.kill(pid, signal.SIGTERM)

    host.expect(f"CHILD EXITED {-signal.SIGTERM}")
    assert _stop_state(host, env, "coop") == "none"  # the parent stopped nothing


def test_stop_all_from_the_cli_reports_every_thread(workers: Host, env: dict[str, str]) -> None:
    result = run_cli(
        "stop", "--all", "--grace", "0.5", "--json", "--pid", str(workers.pid), env=env
    )

    assert result.returncode == 6, result.stderr  # the stubborn thread ignores its flag
    report = json.loads(result.stdout)
    outcomes = {r["thread"]["name"]: (r["outcome"], r["forced"]) for r in report["threads"]}
    assert outcomes == {
        "coop-1": ("exited", False),
        "coop-2": ("exited", False),
        "stubborn": ("still_running", False),
    }
    assert report["all_exited"] is False
    workers.expect("EXITED coop-1")
    threads = {
        t["name"]: t for t in cli_json("list", "--pid", str(workers.pid), env=env)["threads"]
    }
    assert threads["threadctl-serve"]["stop_state"] == "none"
    assert threads["MainThread"]["stop_state"] == "none"


def test_stop_all_forces_stubborn_threads_only_when_asked(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("forcible.py", "spinner", "coop")

    table = run_cli("stop", "--all", "--grace", "0.3", "--force", "--pid", str(host.pid), env=env)

    assert table.returncode == 0, table.stderr
    rows = {line.split()[1]: line.split()[2:] for line in table.stdout.splitlines()[1:-1]}
    assert rows == {"spinner": ["exited", "yes"], "coop": ["exited", "no"]}
    assert table.stdout.splitlines()[-1].startswith("2 of 2 threads exited")
    host.expect("FINALLY spinner")
    host.expect("FINALLY coop")


def test_stop_all_does_not_interrupt_a_critical_section(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("forcible.py", "critical")

    result = run_cli(
        "stop", "--all", "--grace", "0.2", "--force", "--wait", "0.2", "--json",
        "--pid", str(host.pid), env=env,
    )  # fmt: skip

    assert result.returncode == 6
    report = json.loads(result.stdout)
    assert [(r["thread"]["name"], r["outcome"]) for r in report["threads"]] == [
        ("critical", "force_deferred")
    ]
    host.send("leave")
    host.expect("LEAVING critical")
    host.expect("FINALLY critical")
    assert "AFTER critical" not in host.seen
