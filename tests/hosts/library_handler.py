"""Host: a consume() thread whose handler is library code (a bound
Event.wait, no frame of the program's own), forced while it handles an item.

No frame of a task is then on the thread's stack, as in the few bytecodes
between two of consume()'s critical sections: the forced stop must be
deferred, not refused, and end the loop once the item is done, losing
nothing. Prints `RESULT <json>` and exits.
"""

import json
import queue
import threading

import threadctl

jobs: queue.Queue[float] = queue.Queue()
gate = threading.Event()
server = threadctl.install()
consumer = threading.Thread(
    target=threadctl.consume, args=(jobs, gate.wait), name="consumer", daemon=True
)
consumer.start()
jobs.put(60.0)  # the handler's call: gate.wait(60.0)
taken = threading.Event()
threading.Thread(target=lambda: (jobs.join(), taken.set()), daemon=True).start()
while jobs.qsize():  # taken inside consume()'s critical section, handled right after
    taken.wait(0.01)
try:
    answer = threadctl.stop(consumer.ident, force=True, wait=0, reason="library handler")
    outcome, waits_in = answer.outcome.value, answer.thread.force_waits_in
except threadctl.ProtectedThread as error:
    outcome, waits_in = "refused", str(error)
gate.set()
consumer.join(30)
print(
    "RESULT "
    + json.dumps(
        {
            "outcome": outcome,
            "waits_in": waits_in,
            "alive": consumer.is_alive(),
            "handled": taken.wait(10),
            "left_in_queue": jobs.qsize(),
        }
    ),
    flush=True,
)
server.close()
