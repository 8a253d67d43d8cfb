"""Stack capture must never hurt the host: 16 clients list every thread's
stack at once, for 30 s (THREADCTL_STRESS_SECONDS), while threads churn and
spin. On CPython 3.11 this pattern locked a process up within seconds
(cpython#106883) before capture was serialised with the GC paused."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable

import grpc

from support import Host, connect
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

CLIENTS = 16
SECONDS = float(os.environ.get("THREADCTL_STRESS_SECONDS", "30"))


def test_concurrent_stack_listings_do_not_hurt_the_host(start_host: Callable[..., Host]) -> None:
    host = start_host("churn.py")
    address = f"unix:{host.ready['socket']}"
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def client() -> None:
        with connect(address) as channel:
            stub = pb_grpc.ThreadControlStub(channel)
            while time.monotonic() < deadline:
                try:
                    listing = stub.ListThreads(
                        pb.ListThreadsRequest(include_stacks=True), timeout=30
                    )
                    outcome = "OK" if listing.threads else "EMPTY"
                except grpc.RpcError as error:
                    outcome = error.code().name
                with lock:
                    outcomes[outcome] += 1

    clients = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=SECONDS + 120)

    print(f"stack stress: {SECONDS:g} s, {CLIENTS} clients: {dict(outcomes)}")
    assert not any(t.is_alive() for t in clients), "a client hung: the server locked up"
    # Any code but OK is an error (the server admits 32 calls at once).
    assert set(outcomes) == {"OK"}, outcomes
    assert host.proc.poll() is None, "the host crashed"
    with connect(address) as channel:
        listing = pb_grpc.ThreadControlStub(channel).ListThreads(
            pb.ListThreadsRequest(), timeout=10
        )
    assert {"churner", "busy-0", "busy-1"} <= {t.name for t in listing.threads}
    assert host.stop() == 0
