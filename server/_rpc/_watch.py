"""State of one WatchThreads call: the previous snapshot, from which each
message gets its CPU shares and the threads that started or exited."""

from __future__ import annotations

import time

from threadctl._rpc._proto_mapping import to_proto
from threadctl._snapshot import snapshot_all
from threadctl.v1 import threadctl_pb2 as pb


class Watch:
    def __init__(self, include_stacks: bool) -> None:
        self._include_stacks = include_stacks
        self._previous: dict[str, pb.ThreadRecord] = {}
        self._previous_time: float | None = None

    def next_message(self, process: pb.ProcessInfo) -> pb.WatchThreadsResponse:
        now = time.monotonic()
        sample_time = time.time()
        current: dict[str, pb.ThreadRecord] = {}
        for thread in snapshot_all(include_stacks=self._include_stacks):
            record = to_proto(thread)
            key = thread.identity or f"partial:{thread.ident}"
            before = self._previous.get(key)
            elapsed = None if self._previous_time is None else now - self._previous_time
            if (
                elapsed
                and before is not None
                and before.HasField("cpu_seconds")
                and (record.HasField("cpu_seconds"))
            ):
                record.cpu_share = max(0.0, record.cpu_seconds - before.cpu_seconds) / elapsed
            current[key] = record
        first = self._previous_time is None
        message = pb.WatchThreadsResponse(
            process=process,
            threads=current.values(),
            sample_time=sample_time,
            interval_seconds=0.0 if first else now - (self._previous_time or now),
            started=[] if first else [k for k in current if k not in self._previous],
            exited=[r for k, r in self._previous.items() if k not in current],
        )
        self._previous, self._previous_time = current, now
        return message
