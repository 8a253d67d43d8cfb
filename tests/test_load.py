"""Load: 8 clients list, show and stop for a bounded time while 500 threads
churn in the host (tests/hosts/load.py).

Asserted: only the expected status codes (NOT_FOUND: the thread exited;
FAILED_PRECONDITION: its id passed to another thread), no call and no client
hangs, and the host's own work goes on all along. Throughput and latency are
printed (`pytest -s`), never asserted: the suite runs on loaded machines.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter, defaultdict

import grpc

from support import DEADLINE, Host, connect
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

CLIENTS = 8
SECONDS = 10.0
EXPECTED = {"OK", "NOT_FOUND", "FAILED_PRECONDITION"}


def _heartbeat(host: Host) -> tuple[int, int, int]:
    """(heartbeats, workers started, workers alive) as the host counts them."""
    host.send("count?")
    _, beats, started, alive = host.expect("COUNT ").split()
    return int(beats), int(started), int(alive)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def test_eight_clients_against_500_churning_threads(start_host) -> None:  # type: ignore[no-untyped-def]
    host: Host = start_host("load.py", "500")
    address = host.ready["socket"]
    codes: Counter[tuple[str, str]] = Counter()
    latencies: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    end = time.monotonic() + SECONDS

    def client(seed: int) -> None:
        rng = random.Random(seed)
        workers: list[pb.ThreadRecord] = []
        with connect(address) as channel:
            stub = pb_grpc.ThreadControlStub(channel)
            while time.monotonic() < end:
                op = rng.choices(["list", "stacks", "get", "stop", "force"], [35, 5, 20, 35, 5])[0]
                victim = rng.choice(workers) if workers else None
                started = time.perf_counter()
                try:
                    if op in ("list", "stacks") or victim is None:
                        op = "stacks" if op == "stacks" else "list"
                        listing = stub.ListThreads(
                            pb.ListThreadsRequest(include_stacks=op == "stacks"), timeout=DEADLINE
                        )
                        workers = [t for t in listing.threads if t.name.startswith("worker-")]
                    elif op == "get":
                        stub.GetThread(
                            pb.GetThreadRequest(thread=pb.ThreadSelector(ident=victim.ident)),
                            timeout=DEADLINE,
                        )
                    else:
                        stub.StopThread(
                            pb.StopThreadRequest(
                                thread=pb.ThreadSelector(native_id=victim.native_id),
                                expected_identity=victim.identity,
                                mode=pb.STOP_MODE_FORCE
                                if op == "force"
                                else pb.STOP_MODE_UNSPECIFIED,
                                reason="load test",
                            ),
                            timeout=DEADLINE,
                        )
                    code = "OK"
                except grpc.RpcError as error:
                    code = error.code().name
                elapsed = time.perf_counter() - started
                with lock:
                    codes[op, code] += 1
                    latencies[op].append(elapsed)

    clients = [
        threading.Thread(target=client, args=(i,), name=f"load-client-{i}") for i in range(CLIENTS)
    ]
    # The host's own work, sampled about once a second while the load runs
    # (a sample is taken only once a second has passed since the previous one).
    samples = [_heartbeat(host)]
    for thread in clients:
        thread.start()
    give_up = time.monotonic() + SECONDS + 4 * DEADLINE
    next_sample = time.monotonic() + 1.0
    while (running := [t for t in clients if t.is_alive()]) and time.monotonic() < give_up:
        running[0].join(timeout=max(0.0, next_sample - time.monotonic()))
        if time.monotonic() >= next_sample:
            samples.append(_heartbeat(host))
            next_sample = time.monotonic() + 1.0
    samples.append(_heartbeat(host))
    before, after = samples[0], samples[-1]

    assert not any(thread.is_alive() for thread in clients), "a client hung"
    assert {code for _, code in codes} <= EXPECTED, codes
    assert sum(n for (op, code), n in codes.items() if op == "stop" and code == "OK") > 0, codes
    beats = [sample[0] for sample in samples]
    # Never stalled for a second (the last sample may follow the one before closely).
    assert all(a < b for a, b in itertools.pairwise(beats[:-1])), beats
    assert beats[-1] >= beats[-2], beats
    assert after[1] > before[1]  # threads kept coming and going
    with connect(address) as channel:
        listing = pb_grpc.ThreadControlStub(channel).ListThreads(
            pb.ListThreadsRequest(), timeout=DEADLINE
        )
    assert {"spawner-0", "heartbeat"} <= {t.name for t in listing.threads}

    alive = [sample[2] for sample in samples]
    every = [value for values in latencies.values() for value in values]
    lines = [
        f"load: {CLIENTS} clients, {SECONDS:g} s; workers alive {min(alive)} to {max(alive)},"
        f" {after[1] - before[1]} started meanwhile; host heartbeats {before[0]} -> {after[0]}",
        f"  all: {len(every) / SECONDS:.0f} calls/s, p50 {_percentile(every, 0.5) * 1e3:.1f} ms,"
        f" p99 {_percentile(every, 0.99) * 1e3:.1f} ms",
    ]
    for op, values in sorted(latencies.items()):
        mix = ", ".join(f"{code} {n}" for (o, code), n in sorted(codes.items()) if o == op)
        lines.append(
            f"  {op:6s} {len(values):6d} calls, p50 {_percentile(values, 0.5) * 1e3:7.1f} ms,"
            f" p99 {_percentile(values, 0.99) * 1e3:7.1f} ms  ({mix})"
        )
    print("\n" + "\n".join(lines))
