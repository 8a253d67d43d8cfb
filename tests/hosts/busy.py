"""Host: a runaway pure-Python thread beside threadctl, for the switch interval.

spinner   never waits (holds the GIL all it can)
deaf      checks no stop flag; its stop hook prints `HOOK <switch interval>`
          (hooks run while the request is being worked on) and, if the
          host was told `own X`, sets the interval to X itself, as the
          application's own choice; it ends on `release`
An argument sets the host's own switch interval at start.
Commands on stdin: `interval?` prints `INTERVAL <seconds>`; `own X`;
`release`. Prints `READY <json>` when served. Exits on EOF.
"""

import json
import sys
import threading

from _hostkit import say

import threadctl

if len(sys.argv) > 1:
    sys.setswitchinterval(float(sys.argv[1]))
released = threading.Event()
hooked = threading.Event()
own_interval = []


def spin() -> None:
    count = 0
    while True:
        count += 1


def deaf() -> None:
    def hook() -> None:
        say(f"HOOK {sys.getswitchinterval()!r}")
        if own_interval:
            sys.setswitchinterval(own_interval[0])

    threadctl.on_stop(hook)
    hooked.set()
    released.wait()


threads = [
    threading.Thread(target=spin, name="spinner", daemon=True),
    threading.Thread(target=deaf, name="deaf", daemon=True),
]
for thread in threads:
    thread.start()
hooked.wait()
threadctl.install()
info = {t.name: {"ident": t.ident, "native_id": t.native_id} for t in threads}
say("READY " + json.dumps({"threads": info}))
for line in sys.stdin:
    command = line.split()
    if command == ["interval?"]:
        say(f"INTERVAL {sys.getswitchinterval()!r}")
    elif command[:1] == ["own"]:
        own_interval.append(float(command[1]))
    elif command == ["release"]:
        released.set()
