"""Host: an asyncio program that never imports threadctl, started with
asyncio.run as its users start it, for one-shot task listings.

Main loop: `waiter` awaiting an asyncio.Queue, `sleeper` in asyncio.sleep,
`py-task` (a pure-Python Task, asyncio.tasks._PyTask) awaiting an Event,
and on CPython 3.11+ `supervisor` with a TaskGroup of `worker-1`. A second
loop runs in the thread `side-loop` with the task `side-ticker`.

Prints `READY {"threads"}`. Commands on stdin: `block` starts `blocker` on
the main loop, a coroutine that never awaits (prints BLOCKING, and ends on
`unblock`); `modules?` prints `MODULES <json list>`; `ticks?` prints `TICKS
<side-ticker's count>`. EOF ends the program.
"""

import asyncio
import contextlib
import json
import sys
import threading
import time

from _hostkit import say

ready = threading.Event()
side_ready = threading.Event()
unblocked = threading.Event()
ticks = [0]
loop_of_main: list[asyncio.AbstractEventLoop] = []


async def blocker() -> None:
    say("BLOCKING")
    while not unblocked.wait(0.01):  # never awaits: the loop stands still
        time.sleep(0.001)


async def side_ticker() -> None:
    while True:
        ticks[0] += 1
        await asyncio.sleep(0.01)


def side_loop() -> None:
    asyncio.run(side_ticker_main())


async def side_ticker_main() -> None:
    ticker = asyncio.create_task(side_ticker(), name="side-ticker")
    side_ready.set()
    await ticker


async def supervisor(event: asyncio.Event) -> None:
    async with asyncio.TaskGroup() as group:
        group.create_task(event.wait(), name="worker-1")


async def main() -> None:
    loop = asyncio.get_running_loop()
    loop_of_main.append(loop)
    queue: asyncio.Queue[int] = asyncio.Queue()
    event = asyncio.Event()
    keep = [
        asyncio.create_task(queue.get(), name="waiter"),
        asyncio.create_task(asyncio.sleep(3600), name="sleeper"),
        asyncio.tasks._PyTask(event.wait(), loop=loop, name="py-task"),  # type: ignore[attr-defined]
    ]
    if sys.version_info >= (3, 11):
        keep.append(asyncio.create_task(supervisor(event), name="supervisor"))
    await asyncio.sleep(0)
    ready.set()
    await asyncio.Event().wait()  # forever: the program ends on EOF
    del keep


def start_blocker() -> None:
    loop_of_main[0].create_task(blocker(), name="blocker")


def commands() -> None:
    ready.wait()
    side_ready.wait()
    threads = {t.name: {"ident": t.ident, "native_id": t.native_id} for t in (main_thread, side)}
    say("READY " + json.dumps({"threads": threads}))
    for line in sys.stdin:
        command = line.strip()
        if command == "block":
            loop_of_main[0].call_soon_threadsafe(start_blocker)
        elif command == "unblock":
            unblocked.set()
        elif command == "modules?":
            say("MODULES " + json.dumps(sorted(sys.modules)))
        elif command == "ticks?":
            say(f"TICKS {ticks[0]}")
    unblocked.set()
    loop_of_main[0].call_soon_threadsafe(loop_of_main[0].stop)


main_thread = threading.main_thread()
side = threading.Thread(target=side_loop, name="side-loop", daemon=True)
side.start()
threading.Thread(target=commands, name="commands", daemon=True).start()
with contextlib.suppress(RuntimeError):  # the loop was stopped on EOF
    asyncio.run(main())
