"""Host: forced stops at random moments of threads busy in the standard
library's lock wrappers, counting what they leave behind.

argv: TRIALS SEED. Each trial starts one worker busy with one workload (a
queue, a logging handler, a condition, a semaphore, an event, a thread pool,
a plain `with lock:`), lets it run a random 0 to 3 ms, force-stops it with
threadctl.stop(force=True, wait=...), and checks the workload's locks are all
free again and the thread is gone. A thread-pool trial also checks that every
future completed (a result or threadctl.TaskStopped) and the pool still
serves; a pool thread caught idle is refused, which is counted too. Prints
`RESULT <json>`: trials per workload, outcomes, and the failures seen
(which the test expects to be empty).
"""

import concurrent.futures
import io
import json
import logging
import queue
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

import threadctl

trials, seed = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)


class Workload:
    """One kind of busy thread: run() loops until stopped; free() says
    whether every lock it uses can be taken."""

    def run(self) -> None:
        raise NotImplementedError

    def free(self) -> bool:
        raise NotImplementedError

    def failures(self) -> list[str]:
        return []


def can_take(lock: object) -> bool:
    taken = lock.acquire(timeout=1)  # type: ignore[attr-defined]
    if taken:
        lock.release()  # type: ignore[attr-defined]
    return bool(taken)


class QueueWork(Workload):
    def __init__(self) -> None:
        self.q: queue.Queue[int] = queue.Queue(maxsize=4)

    def run(self) -> None:
        while True:
            self.q.put(1)
            self.q.get()

    def free(self) -> bool:
        return can_take(self.q.mutex)


class LoggingWork(Workload):
    def __init__(self) -> None:
        self.handler = logging.StreamHandler(io.StringIO())
        self.log = logging.getLogger(f"stress.{id(self)}")
        self.log.addHandler(self.handler)
        self.log.propagate = False
        self.log.setLevel(logging.INFO)

    def run(self) -> None:
        while True:
            self.log.info("busy %d", 1)
            self.handler.stream.seek(0)
            self.handler.stream.truncate()

    def free(self) -> bool:
        self.log.removeHandler(self.handler)
        return can_take(self.handler.lock)


class ConditionWork(Workload):
    def __init__(self) -> None:
        self.condition = threading.Condition()

    def run(self) -> None:
        while True:
            with self.condition:
                self.condition.notify_all()
                self.condition.wait(0.0001)

    def free(self) -> bool:
        return can_take(self.condition)


class SemaphoreWork(Workload):
    def __init__(self) -> None:
        self.semaphore = threading.BoundedSemaphore(1)

    def run(self) -> None:
        while True:
            with self.semaphore:
                pass

    def free(self) -> bool:
        return can_take(self.semaphore) and can_take(self.semaphore._cond)


class EventWork(Workload):
    def __init__(self) -> None:
        self.event = threading.Event()

    def run(self) -> None:
        while True:
            self.event.set()
            self.event.clear()
            self.event.wait(0)

    def free(self) -> bool:
        return can_take(self.event._cond)


class PlainLockWork(Workload):
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def run(self) -> None:
        n = 0
        while True:
            with self.lock:
                n += 1

    def free(self) -> bool:
        return can_take(self.lock)


def task() -> int:
    n = 0
    for i in range(100000):
        n += i
    return n


class PoolWork(Workload):
    """The worker submits short tasks to a pool and collects their results,
    while the trial force-stops one of the pool's threads instead."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="stress-pool")
        self.futures: list[concurrent.futures.Future[int]] = []
        self.running = threading.Event()

    def run(self) -> None:
        try:
            while True:
                batch = [self.pool.submit(task) for _ in range(4)]
                self.running.set()
                self.futures += batch
                concurrent.futures.wait(batch)
                del self.futures[:-64]
        except threadctl.ThreadStopped:
            return

    def pool_thread(self) -> threading.Thread | None:
        workers = [
            t
            for t in self.pool._threads
            if t.ident is not None and t.is_alive()  # type: ignore[attr-defined]
        ]
        return rng.choice(workers) if workers else None

    def free(self) -> bool:
        return True

    def failures(self) -> list[str]:
        problems = []
        done, pending = concurrent.futures.wait(self.futures, timeout=5)
        if pending:
            problems.append(f"{len(pending)} futures never completed")
        for future in done:
            error = future.exception()
            if error is not None and not isinstance(error, threadctl.TaskStopped):
                problems.append(f"a future failed with {type(error).__name__}")
        try:
            if self.pool.submit(task).result(timeout=5) != task():
                problems.append("the pool answered wrongly")
        except Exception as error:
            problems.append(f"the pool no longer serves: {type(error).__name__}")
        self.pool.shutdown(wait=False)
        return problems


WORKLOADS: list[Callable[[], Workload]] = [
    QueueWork,
    LoggingWork,
    ConditionWork,
    SemaphoreWork,
    EventWork,
    PlainLockWork,
    PoolWork,
]
server = threadctl.install()
host_interval = sys.getswitchinterval()
outcomes: Counter[str] = Counter()
runs: Counter[str] = Counter()
problems: list[str] = []
for trial in range(trials):
    make = WORKLOADS[trial % len(WORKLOADS)]
    work = make()
    name = type(work).__name__
    runs[name] += 1
    thread = threading.Thread(target=work.run, name=f"busy-{trial}", daemon=True)
    thread.start()
    time.sleep(rng.random() * 0.003)
    if isinstance(work, PoolWork):
        work.running.wait(5)
        time.sleep(rng.random() * 0.003)  # into the pool's steady state
        target = work.pool_thread() or thread
        try:
            result = threadctl.stop(target.ident, force=True, wait=5)
            outcomes[f"{name}:{result.outcome.value}"] += 1
        except threadctl.ProtectedThread:  # caught it idle, between tasks
            outcomes[f"{name}:refused"] += 1
        except threadctl.ThreadNotFound:
            outcomes[f"{name}:gone"] += 1
        if thread.is_alive():  # end the submitting thread (unless it was the one stopped)
            submitter = threadctl.stop(thread.ident, force=True, wait=5)
            outcomes[f"{name}:submitter {submitter.outcome.value}"] += 1
    else:
        result = threadctl.stop(thread.ident, force=True, wait=5)
        outcomes[f"{name}:{result.outcome.value}"] += 1
        if result.outcome.value != "exited":
            problems.append(f"trial {trial} ({name}): {result.outcome.value}")
    thread.join(5)
    if thread.is_alive():
        frame, stack = sys._current_frames().get(thread.ident or 0), []
        while frame is not None:
            stack.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            frame = frame.f_back
        del frame
        problems.append(f"trial {trial} ({name}): thread still alive in {stack}")
    if not work.free():
        problems.append(f"trial {trial} ({name}): a lock was left held")
    problems += [f"trial {trial} ({name}): {p}" for p in work.failures()]
deadline = time.monotonic() + 5
while sys.getswitchinterval() != host_interval and time.monotonic() < deadline:
    time.sleep(0.01)  # the landing thread puts the host's switch interval back
if sys.getswitchinterval() != host_interval:
    problems.append(f"switch interval left at {sys.getswitchinterval()}")
print(
    "RESULT " + json.dumps({"runs": runs, "outcomes": outcomes, "problems": problems[:20]}),
    flush=True,
)
server.close()
