"""Host: a program with as few modules as a Python program can have threads
with, never importing threadctl: for counting what one-shot jobs leave behind.

- spinner: busy in pure Python until a forced stop ends it (prints FINALLY).
- sleeper: sleeps in a loop.
Commands on stdin: `modules?` prints `MODULES <json list of sys.modules>`;
EOF exits.
"""

import sys
import threading
import time


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def spinner() -> None:
    n = 0
    try:
        started.set()
        while True:
            n = (n * 7 + 3) % 1_000_003
    finally:
        say("FINALLY spinner")


def sleeper() -> None:
    while True:
        time.sleep(0.05)


started = threading.Event()
threads = {
    name: threading.Thread(target=target, name=name, daemon=True)
    for name, target in (("spinner", spinner), ("sleeper", sleeper))
}
for thread in threads.values():
    thread.start()
started.wait()
ready = {name: {"ident": t.ident, "native_id": t.native_id} for name, t in threads.items()}
say('READY {"threads": ' + repr(ready).replace("'", '"') + "}")
for line in sys.stdin:
    if line.strip() == "modules?":
        say("MODULES " + repr(sorted(sys.modules)).replace("'", '"'))
