"""The short GIL switch interval while a request is worked on (_switching),
beside a real runaway thread: lowered only while the server works on a
request, the host's own interval back while a handler waits and after it,
and a value the application sets meanwhile kept (real host, real CLI)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from support import DEADLINE, THREADCTL, Host, run_cli, wait_until
from threadctl._switching import FAST_INTERVAL
from threadctl.client import Client

StartHost = Callable[..., Host]
HOST_DEFAULT = 0.005  # CPython's


def interval(host: Host) -> float:
    host.send("interval?")
    return float(host.expect("INTERVAL ").split()[1])


def test_a_request_gets_a_short_interval_and_its_wait_and_the_host_get_their_own(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("busy.py")
    assert interval(host) == HOST_DEFAULT  # an idle server changes nothing

    # A stop of a thread that ignores it: the request is worked on (the
    # thread's stop hook runs then), then waits up to 60 s for it to end.
    stop = subprocess.Popen(
        [THREADCTL, "stop", str(host.tid("deaf")), "--wait", "60", "--pid", str(host.pid)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert float(host.expect("HOOK ").split()[1]) == pytest.approx(FAST_INTERVAL)
        # While the request waits, the host runs at its own interval.
        wait_until(lambda: interval(host) == HOST_DEFAULT, what="the host's interval in the wait")
        assert stop.poll() is None  # still waiting: that was seen during the wait
        host.send("release")
        out, err = stop.communicate(timeout=DEADLINE)
    finally:
        if stop.poll() is None:
            stop.kill()
            stop.communicate()
    assert stop.returncode == 0, err
    assert "exited" in out
    assert interval(host) == HOST_DEFAULT

    # A request that fails gives the interval back too.
    missing = run_cli("stop", "999999999", "--pid", str(host.pid), env=env)
    assert missing.returncode == 4, missing.stderr  # no such thread
    assert interval(host) == HOST_DEFAULT
    assert not [line for line in host.stderr_lines if "Traceback" in line]


def test_an_interval_the_application_sets_during_a_request_is_kept(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("busy.py")
    host.send("own 0.002")  # the deaf thread's stop hook sets it, mid-request

    stopped = run_cli("stop", str(host.tid("deaf")), "--pid", str(host.pid), env=env)

    assert stopped.returncode == 0, stopped.stderr  # requested (the thread ignores it)
    assert float(host.expect("HOOK ").split()[1]) == pytest.approx(FAST_INTERVAL)
    assert interval(host) == 0.002


def test_an_interval_already_short_is_never_touched(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("busy.py", "0.0001")

    stopped = run_cli("stop", str(host.tid("deaf")), "--pid", str(host.pid), env=env)

    assert stopped.returncode == 0, stopped.stderr
    assert float(host.expect("HOOK ").split()[1]) == pytest.approx(0.0001)
    assert interval(host) == pytest.approx(0.0001)


def test_a_watch_gives_the_host_its_interval_between_messages(
    start_host: StartHost, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = start_host("busy.py")
    monkeypatch.setenv("XDG_RUNTIME_DIR", env["XDG_RUNTIME_DIR"])
    with Client.for_pid(host.pid) as client:
        watch = client.watch_threads(interval=30)
        try:
            first = next(watch)
            assert "spinner" in {thread.name for thread in first.threads}
            # The stream stays open for 30 s; meanwhile the host has its own.
            wait_until(lambda: interval(host) == HOST_DEFAULT, what="the host's interval")
        finally:
            watch.close()
    assert interval(host) == HOST_DEFAULT
