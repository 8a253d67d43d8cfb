"""Stop-aware waits and stop hooks reach blocked threads (real host processes)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from support import Host, cli_json

StartHost = Callable[..., Host]


@pytest.mark.parametrize(
    ("name", "returned"),
    [
        ("sleeper", "True"),
        ("eventer", "False"),
        ("conder", "False"),
        ("getter", "threadctl.STOPPED"),
        ("reader", "b''"),
    ],
)
def test_blocked_thread_exits_on_a_cooperative_stop(
    start_host: StartHost, env: dict[str, str], name: str, returned: str
) -> None:
    host = start_host("waits.py", name)
    # The thread is blocked by now or soon; the stop wakes it either way.

    outcome = cli_json("stop", str(host.tid(name)), "--wait", "10", "--pid", str(host.pid), env=env)

    assert outcome["outcome"] == "exited"
    assert host.expect(f"RETURNED {name}") == f"RETURNED {name} {returned}"
    host.expect(f"FINALLY {name}")


def test_raise_on_stop_unwinds_the_thread_quietly(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("waits.py", "raiser")

    outcome = cli_json(
        "stop", str(host.tid("raiser")), "--wait", "10", "--pid", str(host.pid), env=env
    )

    assert outcome["outcome"] == "exited"
    host.expect("FINALLY raiser")
    assert not any(line.startswith("RETURNED") for line in host.seen)
    assert host.stop() == 0
    assert not [line for line in host.stderr_lines if "Traceback" in line]


def test_forced_stop_of_a_stop_aware_wait_is_not_left_pending(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("waits.py", "getter")

    outcome = cli_json(
        "stop", str(host.tid("getter")), "--force", "--wait", "10", "--pid", str(host.pid), env=env
    )

    assert outcome["outcome"] == "exited"
    assert outcome["forced"] is True
    host.expect("FINALLY getter")


@pytest.mark.parametrize("name", ["poller", "worker", "reader"])
def test_the_readmes_thread_examples_stop_when_asked(
    start_host: StartHost, env: dict[str, str], name: str
) -> None:
    # Before, the README's reader closed its socket on a stop, which does not
    # wake a recv on Linux: the thread stayed blocked.
    host = start_host("readme_threads.py")

    outcome = cli_json("stop", str(host.tid(name)), "--wait", "10", "--pid", str(host.pid), env=env)

    assert outcome["outcome"] == "exited"
    host.expect(f"ENDED {name}")
