"""Host: a program whose main thread spins in C code that the injector takes
for the C library (tests/hosts/libc_spin.c, built by the test as
libc-spin.so, called with ctypes, which releases the GIL), so it is never at
a safe point; never imports threadctl.

Prints `READY <json>`; answers `ping` with `PONG` (from another thread: the
main thread never returns); exits on stdin EOF.
"""

import ctypes
import json
import os
import sys
import threading


def commands() -> None:
    for line in sys.stdin:
        if line.strip() == "ping":
            print("PONG", flush=True)
    os._exit(0)


library = ctypes.CDLL(sys.argv[1])
threading.Thread(target=commands, daemon=True).start()
print("READY " + json.dumps({"pid": os.getpid()}), flush=True)
library.spin_forever()
