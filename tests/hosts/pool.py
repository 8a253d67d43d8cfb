"""Host: a one-worker ThreadPoolExecutor whose worker gets stopped mid-task.

`spin` tasks loop in pure Python until stopped by force; `quick` tasks return
at once. Commands: `submit spin`, `submit quick N`, `after-stop` (submits tasks
that sleep stop-aware: they sleep their full time only if the stop that ended
an earlier task is over). Results print as
`FUTURE <name> <result or exception type>`.
"""

import concurrent.futures
import json
import sys
import threading

from _hostkit import say

import threadctl

server = threadctl.install()
pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pool")
running = threading.Event()


def spin() -> str:
    n = 0
    running.set()
    while True:
        n = (n * 7 + 3) % 1_000_003


def quick(i: int) -> int:
    return i * i


def after_stop() -> str:
    return f"slept_full={not threadctl.sleep(0.01)}"


def report(name: str, future: concurrent.futures.Future) -> None:
    error = future.exception()
    say(f"FUTURE {name} {type(error).__name__ if error else future.result()}")


say("READY " + json.dumps({"socket": str(server.socket_path)}))
for line in sys.stdin:
    command = line.split()
    if command[:2] == ["submit", "spin"]:
        future = pool.submit(spin)
        future.add_done_callback(lambda f: report("spin", f))
        running.wait()
        running.clear()
        worker = next(
            t
            for t in threading.enumerate()
            if t.name.startswith("pool")
            and t.is_alive()
            and any(f.function == "spin" for f in threadctl.get_thread(t.ident).stack or ())
        )
        say(f"SPINNING {worker.native_id}")
    elif command[:2] == ["submit", "quick"]:
        for i in range(int(command[2])):
            pool.submit(quick, i).add_done_callback(lambda f, i=i: report(f"quick-{i}", f))
    elif command == ["after-stop"]:
        for i in range(4):
            pool.submit(after_stop).add_done_callback(lambda f, i=i: report(f"after-{i}", f))
pool.shutdown(wait=False)
server.close()
