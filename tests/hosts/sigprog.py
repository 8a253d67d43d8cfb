"""Host: an ordinary threaded program, launched with `python -m threadctl
--stop-on-signals ...`. argv names its non-daemon workers:

coop      loops on threadctl.sleep(0.5) until a stop is requested
stubborn  a pure-Python busy loop that never checks its flag

The main thread joins the workers, as such programs do; with `--in-c`
first, it waits in C code that retries on EINTR instead (os.system(): C
system() in a waitpid loop, on a shell that prints `IN C` and then waits for
a pipe that only the host's end closes). Each worker prints `FINALLY <name>`
when it ends. On stdin EOF (test cleanup) every worker is stopped, by force
if need be, and the shell let go.
"""

import json
import os
import signal
import sys
import threading

from _hostkit import say

import threadctl


def coop() -> None:
    while not threadctl.sleep(0.5):
        pass


def stubborn() -> None:
    n = 0
    while True:
        n = (n * 7 + 3) % 1_000_003


def run(kind: str) -> None:
    try:
        globals()[kind]()
    finally:
        say(f"FINALLY {threading.current_thread().name}")


in_c = sys.argv[1:2] == ["--in-c"]
kinds = sys.argv[2:] if in_c else sys.argv[1:]
workers = [
    threading.Thread(target=run, args=(kind,), name=f"{kind}-{i}") for i, kind in enumerate(kinds)
]
for worker in workers:
    worker.start()
handlers = {s.name: str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM)}
say("READY " + json.dumps({"workers": [w.name for w in workers], "handlers": handlers}))


shell_waits_for, let_shell_go = os.pipe()
os.set_inheritable(shell_waits_for, True)


def end_on_eof() -> None:
    sys.stdin.read()
    threadctl.stop_all(grace=5, force=True)
    os.close(let_shell_go)


threading.Thread(target=end_on_eof, name="eof-watcher", daemon=True).start()
if in_c:
    os.system(f"echo IN C; read -r _ <&{shell_waits_for}")
for worker in workers:
    worker.join()
say("MAIN DONE")
