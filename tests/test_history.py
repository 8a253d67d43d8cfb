"""`threadctl history`: what threadctl's stops did, after the fact, in a real
host (tests/hosts/forcible.py). The task cancels' history is asserted in
test_tasks.py, beside the cancels themselves."""

from __future__ import annotations

import re
from collections.abc import Callable

from support import Host, cli_json, readme_blocks, run_cli, shape

StartHost = Callable[..., Host]


def test_history_tells_how_each_stopped_thread_ended(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("forcible.py", "spinner", "coop")
    pid = ["--pid", str(host.pid)]

    def history() -> list[dict[str, object]]:
        entries: list[dict[str, object]] = cli_json("history", *pid, env=env)["entries"]
        return entries

    assert history() == []
    empty = run_cli("history", *pid, env=env)
    assert empty.returncode == 0, empty.stderr
    assert "threadctl has stopped no thread and cancelled no task here" in empty.stdout

    # The spinner never looks at its flag: a cooperative stop leaves it running.
    asked = run_cli("stop", "spinner", "--reason", "please", *pid, env=env)
    assert asked.returncode == 0, asked.stderr
    (entry,) = history()
    assert (entry["action"], entry["forced"], entry["outcome"]) == ("stop", False, "requested")
    assert (entry["name"], entry["native_id"], entry["how"]) == ("spinner", host.tid("spinner"), "")
    table = run_cli("history", *pid, env=env).stdout
    assert re.search(
        rf" stop +thread {host.tid('spinner')} \(spinner\) +requested +runs on ", table
    )

    forced = run_cli("stop", "spinner", "--force", "--wait", "10", "--reason", "runaway", *pid,
                     env=env)  # fmt: skip
    assert forced.returncode == 0, forced.stdout + forced.stderr
    host.expect("FINALLY spinner")
    stopped_all = run_cli("stop", "--all", "--grace", "10", *pid, env=env)
    assert stopped_all.returncode == 0, stopped_all.stdout + stopped_all.stderr
    host.expect("EXITED coop")

    asked_entry, forced_entry, coop_entry = history()
    died = "raised ForcedStop: forced stop"
    # Both stops of the spinner ended the same way, seen by the dying thread itself.
    assert (asked_entry["how"], asked_entry["ended_observed"]) == (died, False)
    assert (forced_entry["action"], forced_entry["forced"]) == ("stop", True)
    assert (forced_entry["outcome"], forced_entry["reason"]) == ("exited", "runaway")
    assert (forced_entry["how"], forced_entry["ended_observed"]) == (died, False)
    assert forced_entry["requested_at"] <= forced_entry["ended_at"]  # type: ignore[operator]
    # The cooperative thread returned: threadctl saw it had exited.
    assert (coop_entry["action"], coop_entry["name"], coop_entry["outcome"]) == (
        "stop_all",
        "coop",
        "exited",
    )
    assert (coop_entry["how"], coop_entry["ended_observed"]) == ("exited", True)
    assert str(coop_entry["requested_by"]).startswith("unix socket")
    table = run_cli("history", *pid, env=env).stdout
    assert f"stop --force  thread {host.tid('spinner')} (spinner)" in table
    assert re.search(rf"{died} at \d\d:\d\d:\d\d\.\d{{3}} ", table), table
    assert re.search(r"exited, seen at \d\d:\d\d:\d\d\.\d{3} ", table), table
    (example,) = readme_blocks("$ threadctl history --pid")  # the README shows this table
    assert shape(example.splitlines()[2:]) == shape(table.splitlines()[1:]), table
