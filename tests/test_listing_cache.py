"""Listings reuse what they built last time for threads that look the same
(the judged frames per code and instruction, the encoded record per equal
snapshot): each change to a thread must show in the very next listing."""

from __future__ import annotations

from collections.abc import Callable

from support import Host, connect, wait_until
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

FORCED_STATE = {
    pb.STOP_OUTCOME_FORCE_PENDING: pb.STOP_STATE_FORCE_PENDING,
    pb.STOP_OUTCOME_FORCE_DEFERRED: pb.STOP_STATE_FORCE_DEFERRED,
}


def _records(stub: pb_grpc.ThreadControlStub, stacks: bool = False) -> dict[int, pb.ThreadRecord]:
    listing = stub.ListThreads(pb.ListThreadsRequest(include_stacks=stacks), timeout=10)
    return {t.ident: t for t in listing.threads}


def _stop(stub: pb_grpc.ThreadControlStub, ident: int, mode: int) -> pb.StopThreadResponse:
    request = pb.StopThreadRequest(thread=pb.ThreadSelector(ident=ident), mode=mode)
    response: pb.StopThreadResponse = stub.StopThread(request, timeout=10)
    return response


def test_every_change_shows_in_the_next_listing(start_host: Callable[..., Host]) -> None:
    host = start_host("changes.py")
    parked, mover, stuck = (host.ident(n) for n in ("parked", "mover", "stuck"))
    with connect(f"unix:{host.ready['socket']}") as channel:
        stub = pb_grpc.ThreadControlStub(channel)
        for stacks in (False, True, False):  # warm both caches
            first = _records(stub, stacks)
        assert first[parked].name == "parked"
        assert first[mover].activity_detail == "threading.Event.wait"

        host.send("rename renamed")
        host.expect("RENAMED")
        assert _records(stub)[parked].name == "renamed"
        assert _records(stub, stacks=True)[parked].name == "renamed"

        _stop(stub, parked, pb.STOP_MODE_COOPERATIVE)
        listed = _records(stub)[parked]
        assert listed.stop_state == pb.STOP_STATE_REQUESTED
        assert listed.stop_requested_at > 0

        # Pending in the C call, or (from 3.13) deferred to the thread's next line.
        outcome = _stop(stub, stuck, pb.STOP_MODE_FORCE).outcome
        assert outcome in FORCED_STATE
        listed = _records(stub)[stuck]
        assert listed.stop_state == FORCED_STATE[outcome]
        assert listed.HasField("blocked_in") or listed.force_waits_in

        host.send("move")
        host.expect("MOVED")
        # The mover is on its way to Queue.get: no listing may keep the Event.wait.
        wait_until(
            lambda: _records(stub)[mover].activity_detail == "queue.Queue.get",
            what="the mover listed in Queue.get",
        )
        assert _records(stub, stacks=True)[mover].activity_detail == "queue.Queue.get"

        host.send("end")
        host.expect("ENDED")
        assert parked not in _records(stub)
        assert parked not in _records(stub, stacks=True)


def test_watch_shares_are_computed_on_copies(start_host: Callable[..., Host]) -> None:
    """WatchThreads sets cpu_share on its messages; the listing's shared
    records must not carry it into a later ListThreads."""
    host = start_host("changes.py")
    with connect(f"unix:{host.ready['socket']}") as channel:
        stub = pb_grpc.ThreadControlStub(channel)
        watch = stub.WatchThreads(pb.WatchThreadsRequest(interval_seconds=0.1), timeout=30)
        try:
            messages = [next(watch) for _ in range(3)]
        finally:
            watch.cancel()
        measured = [t for t in messages[-1].threads if t.HasField("cpu_seconds")]
        assert measured
        assert all(t.HasField("cpu_share") for t in measured)
        assert not any(t.HasField("cpu_share") for t in _records(stub).values())
