"""Host: the no-loss proof. Consumers handle 10,000 items while a chaos
thread stops them at random, cooperatively or by force, and starts
replacements. Prints `RESULT <json>` with what happened, then exits.

argv: items consumers seed
"""

import collections
import json
import queue
import random
import sys
import threading
import time

from _hostkit import say

import threadctl

ITEMS, CONSUMERS, SEED = (int(a) for a in sys.argv[1:4])


class RecordingQueue(queue.Queue):
    """Remembers every item put back after the initial fill."""

    def __init__(self) -> None:
        super().__init__()
        self.filling = True
        self.requeued: list[int] = []

    def _put(self, item: int) -> None:
        if not self.filling:
            self.requeued.append(item)
        super()._put(item)


jobs = RecordingQueue()
for i in range(ITEMS):
    jobs.put(i)
jobs.filling = False

handled: collections.Counter[int] = collections.Counter()
handled_lock = threading.Lock()
counter = 0


in_handler: dict[int, int] = {}  # consumer ident -> item it is handling


def handle(item: int) -> None:
    ident = threading.get_ident()
    in_handler[ident] = item
    total = 0
    for i in range(500 + item % 500):  # real work, interruptible anywhere
        total += i * i
    time.sleep(0.0002)  # and some I/O, where a forced stop stays pending
    for i in range(500):
        total += i * i
    with handled_lock:
        handled[item] += 1
    in_handler.pop(ident, None)


def start_consumer() -> threading.Thread:
    global counter
    counter += 1
    thread = threading.Thread(
        target=threadctl.consume, args=(jobs, handle), name=f"consumer-{counter}", daemon=True
    )
    thread.start()
    return thread


server = threadctl.install()
say("READY " + json.dumps({"socket": str(server.socket_path)}))
rng = random.Random(SEED)
consumers = [start_consumer() for _ in range(CONSUMERS)]
stops = collections.Counter()
done = threading.Event()
threading.Thread(target=lambda: (jobs.join(), done.set()), daemon=True).start()
while not done.is_set():
    time.sleep(rng.uniform(0.001, 0.005))
    force = rng.random() < 0.5
    # Half the forced stops go to a consumer in the middle of an item: that is
    # where a stop would lose it. The rest land wherever the consumer is.
    busy = [t for t in consumers if t.ident in in_handler]
    victim = rng.choice(busy if force and busy and rng.random() < 0.5 else consumers)
    try:
        result = threadctl.stop(victim.ident, force=force, wait=10, reason="chaos")
    except threadctl.ThreadNotFound:
        stops["gone"] += 1
    else:
        kind = "forced" if result.forced else "unforced"
        stops[f"{'force' if force else 'cooperative'}:{result.outcome.value}:{kind}"] += 1
    consumers.remove(victim)
    consumers.append(start_consumer())
for thread in consumers:
    threadctl.stop(thread.ident, wait=10)

missing = [i for i in range(ITEMS) if handled[i] == 0]
duplicates = sorted(i for i, n in handled.items() if n > 1)
say(
    "RESULT "
    + json.dumps(
        {
            "items": ITEMS,
            "stops": dict(stops),
            "handled_total": sum(handled.values()),
            "missing": missing,
            "duplicates": duplicates,
            "requeued": sorted(jobs.requeued),
            "unexpected": sorted(set(handled) - set(range(ITEMS))),
        }
    )
)
server.close()
