"""State of one WatchThreads call: the previous snapshot, from which each
message gets its CPU shares and the threads that started or exited."""

from __future__ import annotations

import time

from threadctl._rpc._proto_mapping import listed_records
from threadctl.v1 import threadctl_pb2 as pb


class Watch:
    def __init__(self, include_stacks: bool) -> None:
        self._include_stacks = include_stacks
        self._previous: dict[str, pb.ThreadRecord] = {}
        self._previous_time: float | None = None

    def next_message(self, process: pb.ProcessInfo) -> pb.WatchThreadsResponse:
        now = time.monotonic()
        sample_time = time.time()
        current = {
            record.identity or f"partial:{record.ident}": record
            for record in listed_records(self._include_stacks)
        }
        first = self._previous_time is None
        elapsed = 0.0 if self._previous_time is None else now - self._previous_time
        message = pb.WatchThreadsResponse(
            process=process,
            threads=current.values(),
            sample_time=sample_time,
            interval_seconds=elapsed,
            started=[] if first else [k for k in current if k not in self._previous],
            exited=[r for k, r in self._previous.items() if k not in current],
        )
        # The listed records are shared (see listed_records): the shares go
        # on the message's copies.
        for key, copy in zip(current, message.threads, strict=True):
            before = self._previous.get(key)
            if elapsed and before is not None and _both_have_cpu(before, copy):
                copy.cpu_share = max(0.0, copy.cpu_seconds - before.cpu_seconds) / elapsed
        self._previous, self._previous_time = current, now
        return message


def _both_have_cpu(before: pb.ThreadRecord, now: pb.ThreadRecord) -> bool:
    return before.HasField("cpu_seconds") and now.HasField("cpu_seconds")
