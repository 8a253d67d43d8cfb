"""Host: an ordinary program that knows nothing of threadctl.

Used with `python -m threadctl plain_script.py ...`: prints READY with its
argv (and what else `python` decides for a program: sys.path[0], __file__,
__spec__), keeps one worker thread alive, and exits on stdin EOF.
"""

import json
import sys
import threading

from _hostkit import say

stop = threading.Event()
worker = threading.Thread(target=stop.wait, name="plain-worker")
worker.start()
spec = __spec__.name if __spec__ is not None else None
facts = {"argv": sys.argv, "main_module": __name__, "path0": sys.path[0], "file": __file__}
say("READY " + json.dumps({**facts, "spec": spec}))
sys.stdin.read()
stop.set()
worker.join()
