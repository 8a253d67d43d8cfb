"""No task lost: the queue consumer under random cooperative and forced
stops, and what a stop of a ThreadPoolExecutor worker does."""

from __future__ import annotations

import json
from collections.abc import Callable

from support import Host, cli_json, run_cli, run_host

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


def test_forced_stops_of_a_reused_pool_worker_end_each_task_and_the_pool_keeps_serving(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("pool.py")
    workers = set()
    for _ in range(3):  # the same worker runs the next runaway task
        host.send("submit spin")
        worker_tid = host.expect("SPINNING ").split()[1]
        workers.add(worker_tid)

        stopped = run_cli(
            "stop", worker_tid, "--force", "--wait", "5", "--json", "--pid", str(host.pid), env=env
        )

        # The task ended, the worker thread goes on: its own exit code.
        assert stopped.returncode == 9, stopped.stderr
        answer = json.loads(stopped.stdout)
        assert answer["outcome"] == "task_ended"
        assert answer["forced"] is True
        assert answer["already_requested"] is False
        assert answer["thread"]["stop_state"] == "none"
        # The future fails with an ordinary Exception, not the BaseException.
        assert host.expect("FUTURE spin") == "FUTURE spin TaskStopped"
    assert len(workers) == 1
    host.send("submit quick 6")
    results = sorted(host.expect("FUTURE quick-") for _ in range(6))
    assert results == sorted(f"FUTURE quick-{i} {i * i}" for i in range(6))
    host.send("after-stop")
    after = [host.expect("FUTURE after-") for _ in range(4)]
    assert all(line.endswith("slept_full=True") for line in after), after


def test_an_idle_pool_worker_is_not_forced(start_host: StartHost, env: dict[str, str]) -> None:
    host = start_host("pool.py")
    host.send("submit quick 1")
    assert host.expect("FUTURE quick-0") == "FUTURE quick-0 0"
    worker = next(
        t
        for t in cli_json("list", "--pid", str(host.pid), env=env)["threads"]
        if t["name"].startswith("pool")
    )

    refused = run_cli("stop", str(worker["native_id"]), "--force", "--pid", str(host.pid), env=env)

    assert refused.returncode == 5, refused.stderr
    assert "idle pool worker" in refused.stderr
    host.send("submit quick 3")  # nothing was queued for the next task
    results = sorted(host.expect("FUTURE quick-") for _ in range(3))
    assert results == sorted(f"FUTURE quick-{i} {i * i}" for i in range(3))


def test_consumers_of_a_full_bounded_queue_are_stopped_and_keep_every_item(
    env: dict[str, str],
) -> None:
    # Before: both consumers hung for good in the hand-back's put() (issue 18.10).
    result, _ = run_host("full_queue.py", env=env, timeout=120)
    assert result["alive"] == []
    assert result["items"] == [0, 1, 2]
    assert result["outcomes"] == ["exited", "exited"]


def test_a_consumer_forced_without_a_task_frame_is_deferred_and_ends_after_its_item(
    env: dict[str, str],
) -> None:
    # Before: refused as "runs only standard-library code" (CI saw the same
    # refusal for a consumer caught between two of consume()'s critical
    # sections, in test_consumers_stopped_at_random_lose_no_item).
    result, _ = run_host("library_handler.py", env=env, timeout=120)
    assert result["outcome"] == "force_deferred", result["waits_in"]
    assert "item" in result["waits_in"]
    assert result["alive"] is False
    assert result["handled"] is True
    assert result["left_in_queue"] == 0
