"""Listing stacks and stopping threads while many clients do so at once and
threads start and exit underneath: only the documented codes, no hang, and the
host keeps working."""

from __future__ import annotations

import random
import threading
from collections import Counter

import grpc

from support import Host, connect, run_host
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

CLIENTS = 8
CALLS_PER_CLIENT = 25


def test_concurrent_stack_listings_and_stops_during_churn(start_host) -> None:  # type: ignore[no-untyped-def]
    host: Host = start_host("churn.py")
    address = f"unix:{host.ready['socket']}"
    codes: Counter[str] = Counter()
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with connect(address) as channel:
            stub = pb_grpc.ThreadControlStub(channel)
            for _ in range(CALLS_PER_CLIENT):
                try:
                    listing = stub.ListThreads(
                        pb.ListThreadsRequest(include_stacks=True), timeout=30
                    )
                    short = [t for t in listing.threads if t.name.startswith("short-")]
                    if short:
                        victim = rng.choice(short)
                        stub.StopThread(
                            pb.StopThreadRequest(
                                thread=pb.ThreadSelector(ident=victim.ident),
                                expected_identity=victim.identity,
                                reason="churn test",
                            ),
                            timeout=30,
                        )
                    code = "OK"
                except grpc.RpcError as error:
                    code = error.code().name
                with lock:
                    codes[code] += 1

    clients = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=240)

    assert not any(t.is_alive() for t in clients), "a client hung"
    # NOT_FOUND: the victim exited; FAILED_PRECONDITION: its ident was reused.
    assert set(codes) <= {"OK", "NOT_FOUND", "FAILED_PRECONDITION"}, codes
    assert sum(codes.values()) == CLIENTS * CALLS_PER_CLIENT
    assert codes["OK"] > 0
    with connect(address) as channel:
        listing = pb_grpc.ThreadControlStub(channel).ListThreads(
            pb.ListThreadsRequest(), timeout=10
        )
    names = {t.name for t in listing.threads}
    assert {"churner", "busy-0", "busy-1"} <= names
    assert host.stop() == 0


def test_the_native_frame_lookup_agrees_with_current_frames_while_threads_come_and_go(
    env: dict[str, str],
) -> None:
    # GetThread and StopThread find one thread's frame natively (_native and
    # thread_frame.c), through a thread-state offset found at run time:
    # it must give the very frame sys._current_frames() does, also while
    # threading threads and C threads entering Python through ctypes (thread
    # states added without the GIL) come and go (frame_lookup.py). A miss
    # (None, while a C thread links its state) sends the server to
    # sys._current_frames(): allowed, but it must stay rare.
    result, _ = run_host("frame_lookup.py", "20000", env=env, timeout=300)
    assert result["state"] == "ready"
    assert result["failures"] == []
    assert result["misses"] <= result["lookups"] // 100
    assert min(result["churned"].values()) >= 20000
    assert result["lookups"] > 0


def test_listings_and_lookups_leave_no_frame_in_a_reference_cycle(env: dict[str, str]) -> None:
    # Overlapping listings keep the GC paused, so a frame caught in a cycle
    # (a lookup's own frame holding the dict of frames it returned) would
    # never be freed: a host listed by four clients in a loop grew by 50 MB
    # a second. With the GC off, no frame may accumulate (frame_cycles.py).
    result, _ = run_host("frame_cycles.py", "50", env=env, timeout=120)
    assert result["after"] == result["before"]
