"""Host: a program whose main thread loads and unloads a shared library in a
loop (as a program importing extension modules, or using ctypes, does), and
never imports threadctl. A one-shot job injected while that thread is inside
the dynamic loader corrupts the loader's state, and the process dies.

Prints `READY <json>`; exits on stdin EOF.
"""

import _ctypes
import json
import os
import shutil
import sys
import tempfile
import threading

library = _ctypes.__file__  # a shared library every CPython here has
copies = tempfile.mkdtemp()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
print("READY " + json.dumps({"pid": os.getpid()}), flush=True)
loads = 0
while not stop.is_set():
    path = os.path.join(copies, f"copy{loads % 20}.so")  # a new file: a real load each time
    if not os.path.exists(path):
        shutil.copy(library, path)
    _ctypes.dlclose(_ctypes.dlopen(path, os.RTLD_NOW))
    loads += 1
shutil.rmtree(copies)
