"""Benchmark host: a real process that the bench drives over stdin and stdout.

It starts with nothing installed, so the same program serves as the "no
server" baseline, the threadctl host and the bare-gRPC host. Measurements
that only make sense inside the process (Event wakes, async-exception
delivery, server-side listing time, RSS) are taken here and sent back as raw
samples; the bench computes the statistics.

Commands, one per line; each answers one line `<WORD> <json>`:
  install        threadctl.install() on the default socket         INSTALLED {address}
  close          close that server (install may follow again)      CLOSED {}
  echo           a bare gRPC server with one bytes echo method     ECHO {address, method}
  rss            resident set size                                 RSS {bytes}
  park N         park idle threads until N threads are alive       PARKED {threads, parked,
                 (ident: a parked thread's, or main's if none)       ident}
  listtime K S   time the server-side listing K times (S=1 stacks) LISTTIME {snapshot}
  busy N         N pure-Python spinners, running until unbusy      BUSY {threads}
  tasks N        an asyncio loop (its own thread) with N tasks     TASKS {tasks}
                 awaiting a Queue
  unbusy         end the spinners and join them                    UNBUSY {}
  wake K         K bare threading.Event wake-ups                   WAKE {samples}
  coop           a thread blocked in threadctl.sleep()             COOP {ident}
  forcelocal K   in-process forced stop vs bare SetAsyncExc        FORCELOCAL {threadctl, bare}
  spin           a busy thread; prints RAISED {t_ns} when forced   SPIN {ident}
  work N         the fixed CPU-bound workload                      WORK {seconds}
  cpu S          process CPU time over S seconds of idling         CPU {cpu, wall}
  stopall N R    R rounds: stop_all() of N cooperating threads,    STOPALL {threadctl, bare}
                 alternating with N bare Event wakes
  coopmany N     N threads blocked in threadctl.sleep/wait         COOPMANY {threads}
  coopalive      how many of the last coopmany batch are alive     COOPALIVE {alive}
  stopdeaf S R   R rounds, sizes S (comma-separated) in turn:      STOPDEAF {<size>: [...]}
                 stop_all() of threads that ignore the flag
EOF ends the host. Times are seconds unless named *_ns.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _stop_many
import _stops
import grpc

import threadctl

ECHO_METHOD = "/bench.Echo/Echo"
_say_lock = threading.Lock()
_never_set = threading.Event()  # parked threads wait on it for good
_parked: list[threading.Thread] = []
_spinners: list[threading.Thread] = []
_loops: list[Any] = []  # the event loop start_tasks runs (asyncio is imported only then)
_spinning = False  # read by every spinner on each iteration; cleared by unbusy


def say(word: str, payload: dict[str, Any]) -> None:
    """One whole line on stdout, never interleaved with another thread's."""
    with _say_lock:
        sys.stdout.write(f"{word} {json.dumps(payload)}\n")
        sys.stdout.flush()


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def start_echo(directory: str) -> grpc.Server:
    """A bare gRPC server on the same stack as threadctl's: the transport floor.

    No (de)serializers, so requests and responses are the raw bytes.
    """
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, _: request)}
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"unix:{directory}/echo.sock")
    server.start()
    return server


def park(total: int) -> None:
    """Start idle threads until `total` threads are alive."""
    while threading.active_count() < total:
        thread = threading.Thread(target=_never_set.wait, name="parked", daemon=True)
        thread.start()
        _parked.append(thread)


def start_tasks(count: int) -> int:
    """An event loop in a thread of its own with `count` tasks awaiting one Queue."""
    import asyncio

    started = threading.Event()

    async def waiting(queue: asyncio.Queue[int]) -> None:
        await queue.get()

    async def loop() -> None:
        _loops.append(asyncio.get_running_loop())
        queue: asyncio.Queue[int] = asyncio.Queue()
        tasks = [asyncio.create_task(waiting(queue)) for _ in range(count)]
        started.set()
        await asyncio.gather(*tasks)

    threading.Thread(target=asyncio.run, args=(loop(),), name="bench-loop", daemon=True).start()
    started.wait()
    return count


def loop_work(turns: int) -> float:
    """Seconds the bench loop takes for `turns` turns (`await asyncio.sleep(0)`)."""
    import asyncio

    async def work() -> float:
        t0 = time.perf_counter()
        for _ in range(turns):
            await asyncio.sleep(0)
        return time.perf_counter() - t0

    return asyncio.run_coroutine_threadsafe(work(), _loops[0]).result()


def parked_ident() -> int:
    """A thread that stays put for GetThread to describe: a parked one if any."""
    return (_parked[0] if _parked else threading.main_thread()).ident or 0


def list_times(count: int, stacks: bool) -> dict[str, list[float]]:
    """Server-side listing cost: the registry's listing (_snapshot.snapshot_all,
    what ListThreads serves before building protobuf records)."""
    from threadctl import _snapshot  # not before: the RSS row counts what install() loads

    snapshot = []
    for _ in range(count):
        t0 = time.perf_counter()
        _snapshot.snapshot_all(include_stacks=stacks)
        snapshot.append(time.perf_counter() - t0)
    return {"snapshot": snapshot}


def _spin(started: threading.Event) -> None:
    """A bare busy loop: holds the GIL except when the interpreter hands it over."""
    x = 0
    started.set()
    while _spinning:
        x += 1


def start_busy(count: int) -> int:
    """`count` spinners, each running once this returns."""
    global _spinning
    _spinning = True
    for _ in range(count):
        started = threading.Event()
        thread = threading.Thread(target=_spin, args=(started,), name="busy", daemon=True)
        thread.start()
        started.wait()
        _spinners.append(thread)
    return len(_spinners)


def stop_busy() -> None:
    global _spinning
    _spinning = False
    for thread in _spinners:
        thread.join()
    _spinners.clear()


def workload(iterations: int) -> float:
    """The fixed CPU-bound pure-Python workload; returns its wall time.

    It allocates nothing (small ints are cached, repeat() yields one object),
    so the allocator's state, which install() and close() change, cannot
    speed it up or slow it down; only lost CPU time can.
    """
    t0 = time.perf_counter()
    x = 0
    for _ in itertools.repeat(None, iterations):
        x = (x * 3 + 1) & 0x3F
    return time.perf_counter() - t0


def cpu_use(seconds: float) -> dict[str, float]:
    """CPU time of the whole process over `seconds` while this thread sleeps."""
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}


def main() -> None:
    directory = tempfile.mkdtemp(prefix="threadctl-bench-")
    control: threadctl.ControlServer | None = None
    echo: grpc.Server | None = None
    say("READY", {"pid": os.getpid()})
    try:
        for line in sys.stdin:
            command, *args = line.split()
            if command == "install":
                control = threadctl.install()
                say("INSTALLED", {"address": control.address})
            elif command == "close" and control is not None:
                control.close()
                control = None
                say("CLOSED", {})
            elif command == "echo":
                echo = start_echo(directory)
                say("ECHO", {"address": f"unix:{directory}/echo.sock", "method": ECHO_METHOD})
            elif command == "rss":
                say("RSS", {"bytes": rss_bytes()})
            elif command == "park":
                park(int(args[0]))
                say(
                    "PARKED",
                    {
                        "threads": threading.active_count(),
                        "parked": len(_parked),
                        "ident": parked_ident(),
                    },
                )
            elif command == "listtime":
                say("LISTTIME", list_times(int(args[0]), args[1] == "1"))
            elif command == "wake":
                say("WAKE", {"samples": _stops.wake_samples(int(args[0]))})
            elif command == "coop":
                say("COOP", {"ident": _stops.start_cooperative().ident})
            elif command == "forcelocal":
                say("FORCELOCAL", _stops.force_local(int(args[0])))
            elif command == "spin":
                thread = _stops.start_spinner(lambda t_ns: say("RAISED", {"t_ns": t_ns}))
                say("SPIN", {"ident": thread.ident})
            elif command == "cpu":
                say("CPU", cpu_use(float(args[0])))
            elif command == "work":
                say("WORK", {"seconds": workload(int(args[0]))})
            elif command == "stopall":
                say("STOPALL", _stop_many.stop_all_rounds(int(args[0]), int(args[1])))
            elif command == "coopmany":
                say("COOPMANY", {"threads": _stop_many.start_cooperating(int(args[0]))})
            elif command == "coopalive":
                say("COOPALIVE", {"alive": _stop_many.cooperating_alive()})
            elif command == "stopdeaf":
                sizes = [int(size) for size in args[0].split(",")]
                say("STOPDEAF", _stop_many.stop_deaf_rounds(sizes, int(args[1])))
            elif command == "busy":
                say("BUSY", {"threads": start_busy(int(args[0]))})
            elif command == "tasks":
                say("TASKS", {"tasks": start_tasks(int(args[0]))})
            elif command == "loopwork":
                say("LOOPWORK", {"seconds": loop_work(int(args[0]))})
            elif command == "unbusy":
                stop_busy()
                say("UNBUSY", {})
            else:
                say("ERROR", {"command": line.strip()})
    finally:
        # Parked threads are daemons and stay parked: releasing 10,000 at once
        # would only make them all runnable together as the process exits.
        if control is not None:
            control.close()
        if echo is not None:
            echo.stop(None)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
