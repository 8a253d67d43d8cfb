"""Host: an ordinary program that knows nothing of threadctl.

Used with `python -m threadctl plain_script.py ...`: prints READY with its
argv, keeps one worker thread alive, and exits on stdin EOF.
"""

import json
import sys
import threading

from _hostkit import say

stop = threading.Event()
worker = threading.Thread(target=stop.wait, name="plain-worker")
worker.start()
say("READY " + json.dumps({"argv": sys.argv, "main_module": __name__}))
sys.stdin.read()
stop.set()
worker.join()
