"""Host: a thread whose time goes into `__del__` methods, force-stopped.

CPython swallows an exception raised in `__del__`: it prints "Exception
ignored in ..." and the thread runs on. A forced stop must never land there
(the test counts those lines on stderr), and no answer may say "exited" for
a thread still alive. argv: TRIALS. Each trial force-stops one thread,
asking again for up to 5 s. Prints `RESULT <json>`: per trial the outcomes
of the requests, whether the thread still runs, and the problems seen.
"""

import json
import sys
import threading
import time

import threadctl

trials = int(sys.argv[1])


class Heavy:
    def __del__(self) -> None:
        n = 0
        for i in range(2000):
            n += i


def churn() -> None:
    while True:
        Heavy()  # freed at once: its __del__ runs in this thread, every time


server = threadctl.install()
problems: list[str] = []
requests: list[list[str]] = []
running: list[bool] = []
for trial in range(trials):
    thread = threading.Thread(target=churn, name=f"churn-{trial}", daemon=True)
    thread.start()
    outcomes: list[str] = []
    deadline = time.monotonic() + 5
    while thread.is_alive() and time.monotonic() < deadline:
        try:
            result = threadctl.stop(thread.ident, force=True, wait=1)
        except threadctl.ThreadNotFound:
            break
        outcomes.append(result.outcome.value)
        if result.outcome.value == "exited" and thread.is_alive():
            problems.append(f"trial {trial}: answered exited, still alive")
    thread.join(1)
    requests.append(outcomes)
    running.append(thread.is_alive())
result = {"requests": requests, "running": running, "problems": problems}
print("RESULT " + json.dumps(result), flush=True)
server.close()
