"""Host: forks after install(), to see what a child gets and what it does to
the parent's server.

Commands on stdin:
  fork none     fork a child that installs nothing
  fork install  fork a child that calls threadctl.install() (its own PID, so
                its own default socket)
  release       let every child end normally (closing its server, if any, and
                going through the interpreter's shutdown); the parent then
                prints `REAPED <pid> <exit code>` for each
A child prints `CHILD <pid> <plan> none`, `CHILD <pid> <plan> serving <socket>`
or `CHILD <pid> <plan> error <Type>: <message>`, then waits until released.
"""

import json
import os
import sys

from _hostkit import say

import threadctl

server = threadctl.install()
children: dict[int, int] = {}  # pid -> write end of the pipe that holds it
say("READY " + json.dumps({"socket": str(server.socket_path)}))


def child(plan: str, hold: int) -> None:
    """Runs in the child; ends it by raising SystemExit (a normal exit)."""
    mine = None
    outcome = "none"
    if plan == "install":
        try:
            mine = threadctl.install()
            outcome = f"serving {mine.socket_path}"
        except threadctl.ThreadctlError as error:
            outcome = f"error {type(error).__name__}: {error}"
    say(f"CHILD {os.getpid()} {plan} {outcome}")
    os.read(hold, 1)  # returns at EOF: the parent released us
    if mine is not None:
        mine.close()
    sys.exit(0)


for line in sys.stdin:
    command = line.split()
    if command[:1] == ["fork"]:
        hold, release = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(release)
            for other in children.values():
                os.close(other)
            child(command[1], hold)
        os.close(hold)
        children[pid] = release
        say(f"FORKED {pid}")
    elif command == ["release"]:
        for pid, release in list(children.items()):
            os.close(release)
            _, status = os.waitpid(pid, 0)
            say(f"REAPED {pid} {os.waitstatus_to_exitcode(status)}")
            del children[pid]
server.close()
