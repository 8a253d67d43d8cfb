"""A program that uses threadctl as the README shows, for `mypy --strict`
(tests/test_typing.py): the public API must type-check in a user's code."""

from __future__ import annotations

import queue
import threading

import threadctl
from threadctl.client import Client


def next_job(jobs: queue.Queue[int]) -> int | threadctl.Stopped:
    return threadctl.get(jobs, timeout=1.0)


def worker(jobs: queue.Queue[int]) -> None:
    while True:
        item = next_job(jobs)
        if item is threadctl.STOPPED:
            return
        print(item + 1)


def main() -> None:
    server = threadctl.install()
    jobs: queue.Queue[int] = queue.Queue()
    thread = threading.Thread(target=worker, args=(jobs,))
    thread.start()
    assert thread.ident is not None
    result: threadctl.StopResult = threadctl.stop(thread.ident, wait=5.0, reason="done")
    outcome: threadctl.StopOutcome = result.outcome
    print(outcome.value, result.thread.name)
    for snapshot in threadctl.list_threads():
        print(snapshot.name, snapshot.native_id)
    with threadctl.critical():
        print(threadctl.stop_requested())
    with Client(server.address) as client:
        for info in client.list_threads().threads:
            print(info.name, info.native_id)
        answer = client.stop_thread(ident=thread.ident)
        same: threadctl.StopOutcome = answer.outcome  # one type on both sides
        print(same is threadctl.StopOutcome.EXITED)
    server.close()


if __name__ == "__main__":
    main()
