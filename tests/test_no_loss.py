"""No task lost: the queue consumer under random cooperative and forced
stops, and what a stop of a ThreadPoolExecutor worker does."""

from __future__ import annotations

import json
from collections.abc import Callable

from support import Host, run_cli

StartHost = Callable[..., Host]


def test_consumers_stopped_at_random_lose_no_item(start_host: StartHost) -> None:
    host = start_host("consumers.py", "10000", "4", "7")

    result = json.loads(host.expect("RESULT ", timeout=240)[len("RESULT ") :])

    print(
        f"no-loss: {result['items']} items, stops {result['stops']},"
        f" {len(result['requeued'])} handed back, {len(result['duplicates'])} handled twice"
    )
    assert result["missing"] == []
    assert result["unexpected"] == []
    # Duplicates (at-least-once) come only from items whose handler a forced
    # stop interrupted, which consume() handed back to the queue.
    assert set(result["duplicates"]) <= set(result["requeued"])
    forced = sum(n for kind, n in result["stops"].items() if kind.startswith("force:"))
    cooperative = sum(n for kind, n in result["stops"].items() if kind.startswith("cooperative:"))
    assert forced > 20
    assert cooperative > 20
    assert result["requeued"], "no forced stop hit a consumer mid-item: the test proved nothing"


def test_forced_stop_of_a_pool_worker_ends_its_future_and_the_pool_keeps_serving(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("pool.py")
    host.send("submit spin")
    worker_tid = host.expect("SPINNING ").split()[1]

    stopped = run_cli(
        "stop", worker_tid, "--force", "--wait", "2", "--json", "--pid", str(host.pid), env=env
    )

    # The worker thread survives (the executor catches the exception for the
    # future), so the stop answers "delivered" and exit code 6, not "exited".
    assert stopped.returncode == 6, stopped.stderr
    assert json.loads(stopped.stdout)["outcome"] == "force_delivered"
    assert host.expect("FUTURE spin") == "FUTURE spin ForcedStop"
    host.send("submit quick 6")
    results = sorted(host.expect("FUTURE quick-") for _ in range(6))
    assert results == sorted(f"FUTURE quick-{i} {i * i}" for i in range(6))
    host.send("after-stop")
    after = [host.expect("FUTURE after-") for _ in range(4)]
    assert all(line.endswith("slept_full=True") for line in after), after
