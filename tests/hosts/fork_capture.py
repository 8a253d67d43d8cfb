"""Host: forks while other threads capture every thread's stack.

Four threads call threadctl.list_threads(include_stacks=True) in a loop
(the capture holds a lock with the GC paused); the main thread forks argv[1]
children. Each child must find its GC on and list its threads (a capture
lock inherited held would hang it: the parent kills a child after 10 s).
Prints `RESULT <json>`: how many children answered, hung, or had the GC off.
"""

import gc
import json
import os
import signal
import sys
import threading
import time
import warnings

import threadctl

warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
forks = int(sys.argv[1])
running = True


def capture() -> None:
    while running:
        threadctl.list_threads(include_stacks=True)


# Imported before any fork: a child forked while another thread imports a
# module inherits that module's import lock held (CPython's hazard, not ours).
threadctl.list_threads(include_stacks=True)
capturers = [threading.Thread(target=capture, daemon=True) for _ in range(4)]
for thread in capturers:
    thread.start()
counts = {"answered": 0, "hung": 0, "gc_off": 0}
for _ in range(forks):
    pid = os.fork()
    if pid == 0:
        code = 0 if gc.isenabled() else 3
        threadctl.list_threads(include_stacks=True)
        os._exit(code)
    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = -1
            break
        time.sleep(0.005)  # polling a child's exit; not synchronisation between threads
    if status == -1:
        counts["hung"] += 1
    elif os.waitstatus_to_exitcode(status) == 3:
        counts["gc_off"] += 1
    else:
        counts["answered"] += 1
running = False
print("RESULT " + json.dumps(counts), flush=True)
