"""gevent programs (issue 13.3): threadctl never deadlocks one nor keeps it
from exiting. install() after monkey-patching refuses; a server that runs when
the program patches (the launcher, or an attach before the patch) closes
first, with one warning; attach refuses at once; one-shot lists the OS
threads with a note and refuses forced stops.

The host (tests/hosts/gevent_app.py) is a real gevent program: patch_all(),
greenlets, and one real OS thread spinning. It exits with status 3 of its
own on stdin EOF, so a normal exit is told from a crash or a kill.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from support import DEADLINE, Host, cli_json, run_cli, wait_until
from threadctl.client._exits import Exit

pytest.importorskip("gevent")

OWN_EXIT = 3  # gevent_app.py's status on stdin EOF
REFUSAL = "gevent has monkey-patched threading in this process"
WARNING = "threadctl: warning: gevent is about to monkey-patch threading"
StartHost = Callable[..., Host]


def sockets(env: dict[str, str]) -> list[Path]:
    return sorted((Path(env["XDG_RUNTIME_DIR"]) / "threadctl").glob("*.sock"))


def exits_by_itself(host: Host) -> int:
    """Close the host's stdin and wait (a deadline, not a sleep) for its exit."""
    assert host.proc.stdin is not None
    host.proc.stdin.close()
    try:
        return host.proc.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        hung = f"the gevent program hung at exit; stderr={host.stderr_lines}"
        raise AssertionError(hung) from None


def warnings_of(host: Host) -> list[str]:
    return [line for line in host.stderr_lines if line.startswith("threadctl:")]


def test_install_after_patch_all_refuses(start_host: StartHost, env: dict[str, str]) -> None:
    host = start_host("gevent_app.py", "--install")

    answer = json.loads(host.expect("INSTALL ")[len("INSTALL ") :])
    assert answer["error"] == "UnsupportedRuntime"
    assert answer["message"].startswith(f"{REFUSAL}: threadctl's gRPC server needs real OS")
    assert f"`threadctl list --pid {host.pid} --attach`" in answer["message"]
    assert sockets(env) == []
    assert exits_by_itself(host) == OWN_EXIT


def test_the_launcher_closes_its_server_before_the_app_patches(
    start_host: StartHost, env: dict[str, str]
) -> None:
    """The usual case: `python -m threadctl app.py`, the app's first line patches."""
    host = start_host("gevent_app.py", launcher=["-m", "threadctl"])

    wait_until(lambda: warnings_of(host), what="the launcher's warning")
    assert sockets(env) == []
    assert exits_by_itself(host) == OWN_EXIT
    host.stop()  # joins the stderr pump: every line is in
    assert warnings_of(host) == [
        f"{WARNING}, which would deadlock threadctl's gRPC server (it needs real OS threads):"
        " the control server is closed and the program runs on without it; one-shot"
        f" `threadctl list --pid {host.pid} --attach` works"
    ]
    assert host.stderr_lines == warnings_of(host)  # no LoopExit, no traceback


@pytest.mark.parametrize("started_by", ["launcher", "attach"])
def test_a_server_that_served_closes_before_the_patch(
    started_by: str, start_host: StartHost, env: dict[str, str]
) -> None:
    """Calls answered before the patch; then one warning, no server, and the
    program runs on and exits with its own status."""
    launcher = ["-m", "threadctl"] if started_by == "launcher" else None
    host = start_host("gevent_app.py", "--patch-on-command", launcher=launcher)
    if started_by == "attach":
        attached = run_cli("attach", str(host.pid), env=env)
        assert attached.returncode == 0, attached.stderr
    for _ in range(3):
        assert cli_json("list", "--pid", str(host.pid), env=env)["threads"]

    host.send("patch")
    host.expect("RUNNING ")
    assert len(warnings_of(host)) == 1
    assert sockets(env) == []
    listing = run_cli("list", "--pid", str(host.pid), env=env)
    assert listing.returncode == Exit.UNREACHABLE, listing.stderr
    assert exits_by_itself(host) == OWN_EXIT
    host.stop()
    assert host.stderr_lines == warnings_of(host)


def test_attach_is_refused_at_once(start_host: StartHost, env: dict[str, str]) -> None:
    host = start_host("gevent_app.py")

    refused = run_cli("attach", str(host.pid), env=env, timeout=DEADLINE / 2)
    assert refused.returncode == Exit.REFUSED
    assert refused.stderr.startswith(f"threadctl: {REFUSAL}: threadctl's gRPC server needs")
    assert "One-shot `--attach` commands work" in refused.stderr
    assert sockets(env) == []
    assert cli_json("list", "--pid", str(host.pid), "--attach", env=env)["threads"]
    assert exits_by_itself(host) == OWN_EXIT


def test_one_shot_lists_the_os_threads_with_a_note(
    start_host: StartHost, env: dict[str, str]
) -> None:
    """The main thread under its TID (not a greenlet's id), the spinning OS
    thread (unknown to `threading`: partial), no greenlet, no agent thread."""
    host = start_host("gevent_app.py")

    listing = cli_json("list", "--pid", str(host.pid), "--attach", env=env)
    assert any(note.startswith(REFUSAL) for note in listing["process"]["notes"])
    threads = listing["threads"]
    main = [t for t in threads if t["main"]]
    assert [(t["native_id"], t["name"]) for t in main] == [(host.pid, "MainThread")]
    others = [t for t in threads if not t["main"]]
    assert [t["partial"] for t in others] == [True]  # the spinner
    assert exits_by_itself(host) == OWN_EXIT


def test_a_one_shot_forced_stop_is_refused(start_host: StartHost, env: dict[str, str]) -> None:
    host = start_host("gevent_app.py")

    refused = run_cli("stop", "--pid", str(host.pid), str(host.pid), "--force", "--attach", env=env)
    assert refused.returncode == Exit.REFUSED
    assert refused.stderr.startswith(f"threadctl: {REFUSAL}: greenlets are not threads")
    assert exits_by_itself(host) == OWN_EXIT
