"""Host: a program whose main thread spends its time in C code holding values
in vector registers (tests/hosts/vector_hold.c, built by the test and
loaded with ctypes, which releases the GIL around the call), and never
imports threadctl.

Prints `READY <json>`; on `report` it prints `CHANGED n`, how many times a
held value changed so far, once the call in progress has ended (it checks
the registers until it returns). Exits on stdin EOF.
"""

import ctypes
import json
import os
import sys
import threading

library = ctypes.CDLL(sys.argv[1])
changed = 0
report = threading.Event()
stop = threading.Event()


def commands() -> None:
    for line in sys.stdin:
        if line.strip() == "report":
            report.set()
    stop.set()


threading.Thread(target=commands, daemon=True).start()
print("READY " + json.dumps({"pid": os.getpid()}), flush=True)
while not stop.is_set():
    changed += library.hold_vectors(20)
    if report.is_set():
        report.clear()
        print(f"CHANGED {changed}", flush=True)
