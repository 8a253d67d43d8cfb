"""Listing stacks and stopping threads while many clients do so at once and
threads start and exit underneath: only the documented codes, no hang, and the
host keeps working."""

from __future__ import annotations

import random
import threading
from collections import Counter

import grpc

from support import Host, connect
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
