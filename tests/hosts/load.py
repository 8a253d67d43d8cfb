"""Host: hundreds of threads that come and go, and the host's own work, for
load tests.

worker-N   about POPULATION of them at any time; each lives 1 to 4 s in
           threadctl.sleep() (a stop ends it at once) and is replaced by the
           spawner when it exits
spawner-N  keep the population full (several: a thread start waits for the new
           thread to run, which takes long when the GIL is busy)
heartbeat  the host's own work: counts, about once a millisecond
Commands on stdin: `count?` prints `COUNT <heartbeats> <workers started>
<workers alive>`. Exits on EOF.
"""

import json
import random
import sys
import threading
import time

from _hostkit import say

import threadctl

POPULATION = int(sys.argv[1]) if len(sys.argv) > 1 else 500

done = threading.Event()
slots = threading.BoundedSemaphore(POPULATION)
counts = {"beats": 0, "started": 0}
counter_lock = threading.Lock()
rng = random.Random(1)


def worker(lifetime: float) -> None:
    try:
        threadctl.sleep(lifetime)
    finally:
        slots.release()


def spawn() -> None:
    while not done.is_set():
        if not slots.acquire(timeout=0.1):
            continue
        with counter_lock:
            counts["started"] += 1
            name, lifetime = f"worker-{counts['started']}", rng.uniform(1.0, 4.0)
        thread = threading.Thread(target=worker, args=(lifetime,), name=name, daemon=True)
        thread.start()


def heartbeat() -> None:
    while not done.is_set():
        counts["beats"] += 1
        time.sleep(0.001)


server = threadctl.install()
helpers = [threading.Thread(target=spawn, name=f"spawner-{i}") for i in range(4)]
helpers.append(threading.Thread(target=heartbeat, name="heartbeat"))
for thread in helpers:
    thread.start()
while counts["started"] < POPULATION:
    time.sleep(0.01)
say("READY " + json.dumps({"socket": str(server.socket_path), "population": POPULATION}))
for line in sys.stdin:
    if line.strip() == "count?":
        alive = sum(t.name.startswith("worker-") for t in threading.enumerate())
        say(f"COUNT {counts['beats']} {counts['started']} {alive}")
done.set()
for thread in helpers:
    thread.join()
server.close()
