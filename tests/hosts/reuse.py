"""Host: makes a thread's ident pass to a new thread, for identity checks.

`first` waits until the `replace` command; then it exits and new threads are
started until one gets the same ident, which is reported as
`REUSED <name> <ident>` and kept running.

An ident is the address of glibc's thread descriptor, on the thread's stack,
so a new thread gets `first`'s ident when it gets `first`'s cached stack.
That stack is free only once the kernel has ended the thread (join() returns
a little earlier), and a stack freed later (any thread of the process that
ends) is taken first; so the host waits for `first`'s kernel thread to go and
keeps the candidates running, each taking another cached stack, until one
gets `first`'s.
"""

import json
import os
import sys
import threading
import time

from _hostkit import say

import threadctl

server = threadctl.install()
release_first = threading.Event()
kept: list[threading.Event] = []
first = threading.Thread(target=release_first.wait, name="first")
first.start()
say("READY " + json.dumps({"socket": str(server.socket_path), "ident": first.ident}))


def wait_until_gone(native_id: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while os.path.exists(f"/proc/self/task/{native_id}") and time.monotonic() < deadline:
        time.sleep(0.001)


for line in sys.stdin:
    if line.strip() == "replace":
        release_first.set()
        first.join()
        assert first.native_id is not None
        wait_until_gone(first.native_id)
        candidates: list[tuple[threading.Thread, threading.Event]] = []
        for attempt in range(100):
            release = threading.Event()
            candidate = threading.Thread(target=release.wait, name=f"second-{attempt}")
            candidate.start()
            if candidate.ident == first.ident:
                say(f"REUSED {candidate.name} {candidate.ident}")
                kept.append(release)
                break
            candidates.append((candidate, release))
        else:
            say("NOREUSE")
        for candidate, release in candidates:
            release.set()
            candidate.join()
for release in kept:
    release.set()
server.close()
