"""Host: a control server whose handlers can be made to fail, for the fault barrier.

Commands on stdin:
  fail  the next thread snapshot (ListThreads, WatchThreads) raises a
        RuntimeError whose text names a secret path
  wedge gRPC's own stop never finishes from now on (as grpcio's did after
        an undecodable reflection request, issue 18): stop(None) blocks,
        stop(grace) returns an event that is never set
  close server.close(), then print CLOSED
  exit  leave without close(): the interpreter's exit closes the server
Every record of the `threadctl` logger is printed as `LOG <json>` with its
level, message and traceback, so the test sees what reached the host's log.
"""

import json
import logging
import sys
import threading
import traceback

from _hostkit import say

import threadctl
from threadctl import _snapshot

SECRET = "/secret/path/customer-db.key"
armed = threading.Event()
never = threading.Event()
real_snapshot_all = _snapshot.snapshot_all


def snapshot_all(include_stacks: bool = False) -> list[_snapshot.ThreadSnapshot]:
    if armed.is_set():
        armed.clear()
        raise RuntimeError(f"cannot open {SECRET}: internal detail")
    return real_snapshot_all(include_stacks=include_stacks)


def wedged_stop(self: object, grace: float | None) -> threading.Event:
    if grace is None:
        never.wait()
    return never


class PrintRecords(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        exc = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
        say(
            "LOG "
            + json.dumps({"level": record.levelname, "message": record.getMessage(), "exc": exc})
        )


log = logging.getLogger("threadctl")
log.addHandler(PrintRecords())
log.setLevel(logging.INFO)
log.propagate = False
server = threadctl.install()
# Every threadctl module that imported snapshot_all by name (the servicer, the
# watch) gets the failing one.
for module in list(sys.modules.values()):
    if (
        module.__name__.startswith("threadctl.")
        and vars(module).get("snapshot_all") is real_snapshot_all
    ):
        module.snapshot_all = snapshot_all

say("READY " + json.dumps({"socket": str(server.socket_path), "secret": SECRET}))
for line in sys.stdin:
    command = line.strip()
    if command == "fail":
        armed.set()
        say("ARMED")
    elif command == "wedge":
        type(server._server).stop = wedged_stop
        say("WEDGED")
    elif command == "close":
        server.close()
        say("CLOSED")
    elif command == "exit":
        sys.exit(0)
server.close()
