"""Host: two consumers of a full bounded queue, force-stopped together.

Each consumer (threadctl.consume) holds an item in a handler that never
finishes, and the queue (maxsize 1) holds a third: handing the two items
back finds no room. stop_all(force=True) must still end both consumers,
and no item may be lost. Prints `RESULT <json>`: the consumers still alive,
the items in the queue, stop_all's outcomes.
"""

import json
import queue
import threading
import time

import threadctl

jobs: queue.Queue[int] = queue.Queue(maxsize=1)
holding = threading.Semaphore(0)


def handle(item: int) -> None:
    holding.release()
    while True:  # a handler that never ends (forced stops land between sleeps)
        time.sleep(0.01)


server = threadctl.install()
consumers = [
    threading.Thread(target=threadctl.consume, args=(jobs, handle), name=f"consumer-{n}")
    for n in range(2)
]
for thread in consumers:
    thread.start()
for item in range(3):
    jobs.put(item, timeout=10)
for _ in range(2):
    assert holding.acquire(timeout=10), "a consumer never took an item"
result = threadctl.stop_all(grace=0, force=True, wait=10)
for thread in consumers:
    thread.join(10)
items = []
while True:
    try:
        items.append(jobs.get_nowait())
    except queue.Empty:
        break
print(
    "RESULT "
    + json.dumps(
        {
            "alive": [t.name for t in consumers if t.is_alive()],
            "items": sorted(items),
            "outcomes": sorted(r.outcome.value for r in result.threads),
        }
    ),
    flush=True,
)
server.close()
