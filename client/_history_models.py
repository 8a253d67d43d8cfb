"""Typed result of ListHistory (what threadctl's stops and cancels did),
built from its protobuf message like the thread models (_models)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from threadctl.client._models import ProcessInfo
from threadctl.v1 import threadctl_pb2 as pb


@dataclass(frozen=True)
class HistoryEntry:
    """One stop of a thread or cancel of a task, and how it ended."""

    action: str  # "stop", "stop_all", "cancel"
    forced: bool
    requested_by: str
    reason: str
    outcome: str  # what the call answered ("requested", "task_ended", "cancelled", ...)
    requested_at: float
    name: str
    ident: int  # a thread's (0 for a task)
    native_id: int
    identity: str
    task_id: int  # a task's (0 for a thread)
    coroutine: str
    how: str  # "" while it runs; "exited", "returned", "cancelled", "raised TYPE: TEXT"
    ended_at: float  # 0 while it runs
    ended_observed: bool  # ended_at is when threadctl saw the thread had exited

    @classmethod
    def from_proto(cls, entry: pb.HistoryEntry) -> HistoryEntry:
        return cls(**{f.name: getattr(entry, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class History:
    process: ProcessInfo
    entries: list[HistoryEntry]  # oldest first

    @classmethod
    def from_proto(cls, response: pb.ListHistoryResponse) -> History:
        return cls(
            ProcessInfo.from_proto(response.process),
            [HistoryEntry.from_proto(entry) for entry in response.entries],
        )

    def to_json(self) -> dict[str, object]:
        return {
            "process": asdict(self.process),
            "entries": [asdict(entry) for entry in self.entries],
        }
