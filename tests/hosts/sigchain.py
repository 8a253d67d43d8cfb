"""Host: SIGTERM handling beside another user of the signal wakeup fd, and
across fork. One cooperative worker, `coop`, prints `FINALLY coop` when it
ends; the stop waits the whole grace period (2 s) for the daemon thread that
reads stdin. argv[1] picks the program:

asyncio-first  an asyncio program: add_signal_handler(SIGUSR1) sets asyncio's
               wakeup fd, then it calls install(stop_on_signals=(SIGTERM,))
asyncio-after  the same, launched with `python -m threadctl --stop-on-signals
               TERM`: asyncio sets its wakeup fd after threadctl's
fork           launched the same way; the main thread reads commands

asyncio's SIGUSR1 handler prints `USR1`. Commands on stdin: `close` closes the
server and prints `CLOSED <json>` (the handlers and wakeup fd then in place);
`fork` forks a child that prints `CHILD <json>` (the same, in the child) and
waits for the parent to end, and the parent prints `CHILD EXITED <code>` when
it is gone. EOF: stop the worker and end.
"""

import asyncio
import json
import os
import signal
import sys
import threading

from _hostkit import say

import threadctl


def coop() -> None:
    try:
        while not threadctl.sleep(0.5):
            pass
    finally:
        say("FINALLY coop")


def in_place(**fds: int) -> dict[str, object]:
    """The SIGTERM handler and whether the wakeup fd is one of `fds`."""
    wakeup = signal.set_wakeup_fd(-1)  # no getter: swap and put it back
    signal.set_wakeup_fd(wakeup)
    names = [name for name, fd in fds.items() if fd == wakeup]
    return {"SIGTERM": str(signal.getsignal(signal.SIGTERM)), "wakeup": names or [wakeup]}


def end() -> None:
    threadctl.stop_all(grace=5, force=True)


async def asyncio_program(install_here: bool) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, say, "USR1")
    asyncio_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(asyncio_fd)
    server = threadctl.install(stop_on_signals=(signal.SIGTERM,), grace=2) if install_here else None
    done = loop.create_future()

    def command(line: str) -> None:
        if line == "close" and server is not None:
            server.close()
            say("CLOSED " + json.dumps(in_place(asyncio=asyncio_fd)))
        elif not line:
            end()
            done.set_result(None)

    def read_commands() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(command, line.strip())
        loop.call_soon_threadsafe(command, "")

    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    say("READY " + json.dumps(in_place(asyncio=asyncio_fd)))
    await done


def fork_program() -> None:
    say("READY " + json.dumps(in_place()))
    for line in sys.stdin:
        if line.strip() == "fork":
            parent_alive, parent_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(parent_end)
                say("CHILD " + json.dumps({"pid": os.getpid(), **in_place()}))
                os.read(parent_alive, 1)  # EOF when the parent is gone
                os._exit(0)
            os.close(parent_alive)

            def reap(pid: int = pid) -> None:
                _, status = os.waitpid(pid, 0)
                say(f"CHILD EXITED {os.waitstatus_to_exitcode(status)}")

            threading.Thread(target=reap, name="reaper", daemon=True).start()
    end()


threading.Thread(target=coop, name="coop").start()
if sys.argv[1] == "fork":
    fork_program()
else:
    asyncio.run(asyncio_program(install_here=sys.argv[1] == "asyncio-first"))
