"""The listing's STATE names the function being called, not its argument.

A real host (tests/hosts/labels.py) parks threads in calls written the way
real code writes them; the CLI's `--json` listing must name each callee:
`time.sleep(INTERVAL)` is sleeping in time.sleep, not "blocked: INTERVAL".
Known waits are recognised by code object, so a function `get` in a user's
file named queue.py is not queue.Queue.get. Checked through the control
server and through a one-shot listing of a program without threadctl.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import CodeType

from support import Host, cli_json, run_cli, wait_until
from threadctl._core.known_waits import tagger

StartHost = Callable[..., Host]
PY310 = sys.version_info < (3, 11)

EXPECTED = {
    "constant": ("sleeping", "time.sleep"),  # time.sleep(INTERVAL)
    "attribute": ("sleeping", "time.sleep"),  # time.sleep(self.interval)
    "environment": ("sleeping", "time.sleep"),  # time.sleep(float(os.environ.get(...)))
    "multiline": ("sleeping", "time.sleep"),  # time.sleep(\n abs(\n INTERVAL,\n ),\n)
    "chained": ("waiting", "acquire"),  # registry.lock_for(...).acquire(timeout=LONG)
    "chained_multiline": ("waiting", "acquire"),  # the same, one call per line
    "receiver": ("io", "recv"),  # ours.recv(BUFSIZE)
    "acquirer": ("waiting", "acquire"),  # held.acquire(timeout=LONG)
    "entering": ("waiting", "with (lock or context manager)"),  # with held:
    "dispatcher": ("blocked", "C code"),  # handlers["nap"](INTERVAL): no simple name
    "queued": ("waiting", "queue.Queue.get"),  # the standard library's
    "lookalike_get": ("sleeping", "time.sleep"),  # lookalike/queue.py get() sleeps
    # Any function of the imported socket module's file; 3.10 has no co_qualname.
    "file_reader": ("io", "socket readinto" if PY310 else "socket SocketIO.readinto"),
}
WITH_THREADCTL = {
    **EXPECTED,
    "cooperative_sleep": ("sleeping", "threadctl.sleep"),
    "cooperative_get": ("waiting", "threadctl.get"),
}


def _labels(listing: dict[str, object]) -> dict[str, tuple[object, object]]:
    threads: list[dict[str, object]] = listing["threads"]  # type: ignore[assignment]
    return {
        str(t["name"]): (t["activity"], t["activity_detail"])
        for t in threads
        if t["name"] in WITH_THREADCTL
    }


def _assert_labels(
    listing: Callable[[], dict[str, object]], expected: dict[str, tuple[str, str]]
) -> None:
    """Wait (with a deadline) until every thread is parked as expected; on
    timeout, show how one more listing differs."""
    try:
        wait_until(lambda: _labels(listing()) == expected, what="every thread parked in its call")
    except AssertionError:
        assert _labels(listing()) == expected
        raise


def test_the_server_names_the_function_each_thread_is_calling(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("labels.py")

    _assert_labels(lambda: cli_json("list", "--pid", str(host.pid), env=env), WITH_THREADCTL)


def test_a_one_shot_listing_names_them_the_same_in_a_process_without_threadctl(
    start_host: StartHost, env: dict[str, str]
) -> None:
    """Here the target tags its own frames (known waits by its code objects)
    and the client classifies them."""
    host = start_host("labels.py", "--plain")

    def listing() -> dict[str, object]:
        result = run_cli("list", "--pid", str(host.pid), "--json", "--attach", env=env)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert any("one-shot job" in note for note in data["process"]["notes"])
        assert data["process"]["threadctl_version"] == ""  # not imported there
        return data  # type: ignore[no-any-return]

    _assert_labels(listing, EXPECTED)


def test_known_waits_are_the_imported_modules_code_objects_not_look_alikes() -> None:
    """A copy of queue.py compiled elsewhere has a Queue.get whose code object
    is equal (code equality ignores the file) but is not the imported one."""
    source = Path(queue.__file__).read_text()
    copy = compile(source, "/srv/app/vendor/queue.py", "exec", dont_inherit=True)
    copied_get = _nested(_nested(copy, "Queue"), "get")
    tag = tagger()

    assert copied_get == queue.Queue.get.__code__
    assert tag(copied_get) == ""
    assert tag(queue.Queue.get.__code__) == "queue:Queue.get"
    assert tag(threading.Thread.run.__code__) == "threading"  # machinery, no wait of its own
    assert tag(_nested.__code__) == ""


def _nested(code: CodeType, name: str) -> CodeType:
    return next(c for c in code.co_consts if isinstance(c, CodeType) and c.co_name == name)
