"""Domain records to protobuf messages, from their fields (_fields)."""

from __future__ import annotations

from threadctl._control import StopResult
from threadctl._core.frames import gc_paused
from threadctl._fields import (
    cancel_fields,
    history_fields,
    record_fields,
    stop_all_fields,
    stop_fields,
    tasks_fields,
)
from threadctl._history import Entry
from threadctl._snapshot import ThreadSnapshot, snapshot_all
from threadctl._stop_all import StopAllResult
from threadctl._tasks.cancel import CancelResult
from threadctl._tasks.listing import Listing
from threadctl.v1 import threadctl_pb2 as pb


def to_proto(thread: ThreadSnapshot) -> pb.ThreadRecord:
    """The protobuf record of a snapshot."""
    return pb.ThreadRecord(**record_fields(thread))


class _RecordCache:
    """The records of the last listing, by ident, with the snapshots they
    were made from.

    A listing's threads mostly look as they did last time (parked threads);
    building their records again is the largest part of the listing (about
    2 us a thread). `to_proto` is a pure function of the snapshot, so an equal
    snapshot gets the same record back: it cannot be stale. Only the last
    listing's threads are kept. The records are shared between calls: change
    a copy (a response built from them copies them), never one of these.
    """

    def __init__(self) -> None:
        self._last: dict[int, tuple[ThreadSnapshot, pb.ThreadRecord]] = {}

    def records(self, snapshots: list[ThreadSnapshot]) -> list[pb.ThreadRecord]:
        last = self._last
        kept: dict[int, tuple[ThreadSnapshot, pb.ThreadRecord]] = {}
        records = []
        for snapshot in snapshots:
            hit = last.get(snapshot.ident)
            record = hit[1] if hit is not None and hit[0] == snapshot else to_proto(snapshot)
            kept[snapshot.ident] = (snapshot, record)
            records.append(record)
        self._last = kept  # concurrent listings: the last one's stays, either is right
        return records


# One per kind of listing, so listings with and without stacks do not evict
# each other's records.
_caches = {False: _RecordCache(), True: _RecordCache()}


def listed_records(include_stacks: bool) -> list[pb.ThreadRecord]:
    """The records of every thread (snapshot_all), for ListThreads and
    WatchThreads; shared, read-only (see _RecordCache). Built with the GC
    paused: a listing allocates a few tracked objects per thread."""
    with gc_paused():
        return _caches[include_stacks].records(snapshot_all(include_stacks=include_stacks))


def stop_response(result: StopResult) -> pb.StopThreadResponse:
    return pb.StopThreadResponse(**stop_fields(result))


def stop_all_response(result: StopAllResult) -> pb.StopAllThreadsResponse:
    return pb.StopAllThreadsResponse(**stop_all_fields(result))


def tasks_response(process: pb.ProcessInfo, listing: Listing) -> pb.ListTasksResponse:
    return pb.ListTasksResponse(process=process, **tasks_fields(listing))


def history_response(process: pb.ProcessInfo, entries: list[Entry]) -> pb.ListHistoryResponse:
    return pb.ListHistoryResponse(process=process, **history_fields(entries))


def cancel_response(result: CancelResult) -> pb.CancelTaskResponse:
    return pb.CancelTaskResponse(**cancel_fields(result))
