"""Host: an asyncio echo server (asyncio.start_server, started with
asyncio.run as its users start it) with the tasks of the asyncio tests.

Tasks on the main loop: the server's handler per client (`serve`: echoes
lines; a client that sends nothing leaves it awaiting StreamReader.readline);
`stubborn`, which catches CancelledError and goes on; `supervisor` with a
TaskGroup of `worker-1` and `worker-2` (CPython 3.11+), awaiting a Queue;
`py-task`, a pure-Python Task (asyncio.tasks._PyTask) awaiting an Event. A
second loop runs in the thread `side-loop` with the task `side-ticker`.

Prints `READY {"port", "socket", "threads"}`, then `HANDLER closed` when a
handler ends, `STUBBORN caught` per cancellation it swallows, `BLOCKING`
and `BLOCKER ended <exception>` for the blocker, `FINALIZING` when the
finalizer blocks and `FINALIZER <outcome>` when its task ends, `AUDIT
<json>` per audit record. Commands on stdin: `block` (starts the task
`blocker` on the main loop: a coroutine that never awaits); `finalize`
(starts the task `finalizer`, whose step blocks the loop inside a `__del__`,
where no forced stop may land, and then awaits an hour on the same line);
`release` (lets that `__del__` return); EOF ends the program.
"""

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from _hostkit import say

import threadctl


class PrintAudit(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        say("AUDIT " + json.dumps(record.threadctl_audit))


audit = logging.getLogger("threadctl.audit")
audit.addHandler(PrintAudit())
audit.setLevel(logging.INFO)
audit.propagate = False
server = threadctl.install()
ending = threading.Event()  # stdin closed: the program ends


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    finally:
        writer.close()
        say("HANDLER closed")


async def stubborn() -> None:
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if ending.is_set():  # asyncio.run cancels what is left at the end
                raise
            say("STUBBORN caught")


async def worker(queue: asyncio.Queue[int]) -> None:
    while True:
        await queue.get()


async def supervisor() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    async with asyncio.TaskGroup() as group:
        group.create_task(worker(queue), name="worker-1")
        group.create_task(worker(queue), name="worker-2")


def body(n: int) -> int:
    return (n * 7 + 3) % 1_000_003


async def blocker() -> None:
    say("BLOCKING")
    n = 0
    try:
        while True:  # never awaits: holds the loop
            n = body(n)
    except BaseException as error:
        say(f"BLOCKER ended {type(error).__name__}")
        raise


released = threading.Event()  # the finalizer's __del__ returns


class BlocksWhenFinalized:
    def __del__(self) -> None:
        say("FINALIZING")
        released.wait()


async def finalizer() -> None:
    try:
        # The object dies inside list.clear(): its __del__ blocks the loop,
        # and when it returns the task awaits at once, on the same line (no
        # line of the task's own code runs in between for a stop to land at).
        await asyncio.sleep(3600, [BlocksWhenFinalized()].clear())
    except BaseException as error:
        say(f"FINALIZER {type(error).__name__}")
        raise


async def waits_for_event(event: asyncio.Event) -> None:
    await event.wait()


def side_loop(ready: threading.Event) -> None:
    async def side() -> None:
        ticker = asyncio.create_task(asyncio.sleep(3600), name="side-ticker")
        ready.set()
        await ticker

    asyncio.run(side())


async def main() -> None:
    loop = asyncio.get_running_loop()
    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    kept = [asyncio.create_task(stubborn(), name="stubborn")]
    if sys.version_info >= (3, 11):
        kept.append(asyncio.create_task(supervisor(), name="supervisor"))
    event = asyncio.Event()
    kept.append(asyncio.tasks._PyTask(waits_for_event(event), loop=loop, name="py-task"))
    side_ready = threading.Event()
    side = threading.Thread(target=side_loop, args=(side_ready,), name="side-loop", daemon=True)
    side.start()
    await loop.run_in_executor(None, side_ready.wait)
    ended = asyncio.Event()

    def start(coroutine: Callable[[], Coroutine[Any, Any, None]]) -> None:
        kept.append(loop.create_task(coroutine(), name=coroutine.__name__))

    def commands() -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "block":
                loop.call_soon_threadsafe(start, blocker)
            elif command == "finalize":
                loop.call_soon_threadsafe(start, finalizer)
            elif command == "release":
                released.set()
        released.set()
        ending.set()
        loop.call_soon_threadsafe(ended.set)

    threading.Thread(target=commands, name="commands", daemon=True).start()
    threads = {
        t.name: {"ident": t.ident, "native_id": t.native_id}
        for t in (threading.main_thread(), side)
    }
    port = listener.sockets[0].getsockname()[1]
    say(
        "READY " + json.dumps({"port": port, "socket": str(server.socket_path), "threads": threads})
    )
    async with listener:
        await ended.wait()


asyncio.run(main())
server.close()
