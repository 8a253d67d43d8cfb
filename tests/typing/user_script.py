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
    here: threadctl.ThreadList = threadctl.list_threads()
    for info in here.threads:
        print(info.name, info.native_id)
    with threadctl.critical():
        print(threadctl.stop_requested())
    with Client(server.address) as client:
        remote: threadctl.ThreadList = client.list_threads()  # one type on both sides
        print(remote.process.pid, [info.name for info in remote.threads])
        answer: threadctl.StopResult = client.stop_thread(ident=thread.ident)
        print(answer.outcome is threadctl.StopOutcome.EXITED)
    for report in threadctl.stop_all(grace=0.0).threads:
        print(report.thread.name, report.outcome.value, report.forced)
    server.close()


if __name__ == "__main__":
    main()
