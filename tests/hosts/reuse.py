"""Host: makes a thread's ident pass to a new thread, for identity checks.

`first` waits until the `replace` command; then it exits and new threads are
started until one gets the same ident (Python reuses idents at once), which
is reported as `REUSED <name> <ident>` and kept running.
"""

import json
import sys
import threading

from _hostkit import say

import threadctl

server = threadctl.install()
release_first = threading.Event()
kept: list[threading.Event] = []
first = threading.Thread(target=release_first.wait, name="first")
first.start()
say("READY " + json.dumps({"socket": str(server.socket_path), "ident": first.ident}))

for line in sys.stdin:
    if line.strip() == "replace":
        release_first.set()
        first.join()
        for attempt in range(1000):
            release = threading.Event()
            candidate = threading.Thread(target=release.wait, name=f"second-{attempt}")
            candidate.start()
            if candidate.ident == first.ident:
                say(f"REUSED {candidate.name} {candidate.ident}")
                kept.append(release)
                break
            release.set()
            candidate.join()
        else:
            say("NOREUSE")
for release in kept:
    release.set()
server.close()
