"""Host: a program that receives signals all the time (its SIGUSR1 handler
counts them), with a main thread running Python, and never imports
threadctl.

Prints `READY <json>`; on `load` it loads a fresh copy of an extension
library in another thread (which needs the dynamic loader's lock) and
prints `LOADED <count of signals so far>`; exits on stdin EOF.
"""

import _ctypes
import json
import os
import shutil
import signal
import sys
import tempfile
import threading

received = 0


def count(signum: int, frame: object) -> None:
    global received
    received += 1


def load(directory: str, number: int) -> None:
    path = shutil.copy(_ctypes.__file__, os.path.join(directory, f"copy{number}.so"))
    _ctypes.dlclose(_ctypes.dlopen(path, os.RTLD_NOW))
    print(f"LOADED {received}", flush=True)


def commands(stop: threading.Event) -> None:
    with tempfile.TemporaryDirectory() as directory:
        for number, line in enumerate(sys.stdin):
            if line.strip() == "load":
                threading.Thread(target=load, args=(directory, number)).start()
    stop.set()


signal.signal(signal.SIGUSR1, count)
stop = threading.Event()
threading.Thread(target=commands, args=(stop,), daemon=True).start()
print("READY " + json.dumps({"pid": os.getpid()}), flush=True)
while not stop.is_set():
    sum(range(1000))
