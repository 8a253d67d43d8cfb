"""Host: listings and lookups leave no reference cycle through frames.

With the GC off (as it is, paused, while listings overlap), a frame kept
alive by a cycle stays for good, so a leak shows as frame objects that
accumulate. Lists (with and without stacks), looks up the calling thread
and another one, and stops the other one, argv[1] times each; prints
`RESULT <json>`: the GC-tracked frames before and after.
"""

import gc
import json
import sys
import threading
import types

import threadctl

rounds = int(sys.argv[1])


def tracked_frames() -> int:
    return sum(1 for thing in gc.get_objects() if isinstance(thing, types.FrameType))


def cooperative() -> None:
    while not threadctl.sleep(60):
        pass


def exercise() -> None:
    other = threading.Thread(target=cooperative, name="other")
    other.start()
    threadctl.list_threads(include_stacks=True)
    threadctl.list_threads()
    threadctl.get_thread(other.ident)
    threadctl.get_thread(threading.get_ident())
    threadctl.stop(other.ident, wait=30)
    other.join()


gc.collect()
gc.disable()
exercise()  # first calls: imports, caches
before = tracked_frames()
for _ in range(rounds):
    exercise()
after = tracked_frames()
print("RESULT " + json.dumps({"before": before, "after": after}), flush=True)
