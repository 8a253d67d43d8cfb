"""Host: a gevent program, written as gevent's users write one.

`from gevent import monkey; monkey.patch_all()` first thing, then three
greenlets that loop in gevent.sleep() and one real OS thread (gevent's
original start_new_thread) spinning in pure Python. Prints
`READY {"main_tid": ..., "spinner_tid": ...}`; exits with status 3 on stdin
EOF, its own code, so tests tell a normal exit from a crash or a kill.

- `--patch-on-command`: runs unpatched until stdin says `patch` (so a server
  started before can be called first), then patches and prints `PATCHED`.
- `--install`: calls threadctl.install() after the patch and prints
  `INSTALL {"error": type name, "message": ...}` (or `{"error": null}`).
"""

import json
import os
import sys

from _hostkit import say
from gevent import monkey

LATER = "--patch-on-command" in sys.argv
if not LATER:
    monkey.patch_all()


def read_line() -> str:
    """One line of stdin ("" at EOF), without blocking other greenlets once
    the process is patched."""
    line = b""
    while not line.endswith(b"\n"):
        if monkey.is_module_patched("os"):
            from gevent.socket import wait_read

            wait_read(0)
        byte = os.read(0, 1)
        if not byte:
            return ""
        line += byte
    return line.decode().strip()


def main() -> None:
    if LATER:
        say("READY {}")
        if read_line() != "patch":
            sys.exit(3)
        monkey.patch_all()
        say("PATCHED")
    import _thread

    import gevent

    def spin(started: list) -> None:
        started.append(_thread.get_native_id())
        n = 0
        while True:
            n = (n * 7 + 3) % 1_000_003

    def idle(seconds: float) -> None:
        while True:
            gevent.sleep(seconds)

    started: list = []
    monkey.get_original("_thread", "start_new_thread")(spin, (started,))
    greenlets = [gevent.spawn(idle, 0.01 * (i + 1)) for i in range(3)]
    while not started:
        gevent.sleep(0.001)
    if "--install" in sys.argv:
        say("INSTALL " + json.dumps(try_install()))
    if not LATER:
        say("READY " + json.dumps({"main_tid": os.getpid(), "spinner_tid": started[0]}))
    else:
        say("RUNNING " + json.dumps({"spinner_tid": started[0]}))
    while read_line():
        pass
    gevent.killall(greenlets)
    sys.exit(3)


def try_install() -> dict:
    import threadctl

    try:
        threadctl.install()
    except threadctl.ThreadctlError as error:
        return {"error": type(error).__name__, "message": str(error)}
    return {"error": None}


main()
