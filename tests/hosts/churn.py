"""Host: threads start and exit all the time, some busy in pure Python.

Exercises the paths that touch other threads' frames and states while those
threads come and go. Exits on stdin EOF.
"""

import json
import sys
import threading

from _hostkit import say

import threadctl

done = threading.Event()


def recurse(depth: int) -> int:
    return depth if depth == 0 else 1 + recurse(depth - 1)


def short_lived(n: int) -> None:
    for _ in range(50):
        recurse(n % 40)
        if threadctl.stop_requested():
            return


def churn() -> None:
    n = 0
    while not done.is_set():
        batch = [
            threading.Thread(target=short_lived, args=(n + i,), name=f"short-{n + i}")
            for i in range(20)
        ]
        for thread in batch:
            thread.start()
        for thread in batch:
            thread.join()
        n += 20


def busy() -> None:
    while not done.is_set():
        recurse(30)


server = threadctl.install()
threads = [threading.Thread(target=churn, name="churner")]
threads += [threading.Thread(target=busy, name=f"busy-{i}") for i in range(2)]
for thread in threads:
    thread.start()
say("READY " + json.dumps({"socket": str(server.socket_path)}))
sys.stdin.read()
done.set()
for thread in threads:
    thread.join()
server.close()
