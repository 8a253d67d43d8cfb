"""Host: the native one-thread frame lookup (threadctl._native) checked
against sys._current_frames() while thread states come and go.

argv: CHURN, the threads of each kind to start and end while checking.
Parked threads wait in a known function: threading threads, and C threads
(made with libc's pthread_create through ctypes) that enter Python through a
ctypes callback, whose thread states are added to the interpreter's list by
a thread that does not hold the GIL. Meanwhile threading threads start and
exit all the time, and more C threads enter Python and leave it, until CHURN
of each have. Each round, inside frames_guarded(), the lookup must give
every parked thread the very frame sys._current_frames() gives it, the
calling thread its caller's frame, and None for an ident no thread has.
It may miss a thread (None) while a C thread adds its state (CPython 3.11
links a new state at the head before it links the rest of the list to it);
the server then looks with sys._current_frames(), so misses are counted,
not failed. Prints `RESULT <json>`: the finder's state, rounds, lookups
made, misses, threads churned, and the failures seen (which the test
expects to be empty).
"""

import _thread
import ctypes
import json
import sys
import threading

from threadctl import _native
from threadctl._core.frames import frames_guarded

churn = int(sys.argv[1])
PARKED = 8
done = threading.Event()
# Parked threads block on `gate`; the last to arrive releases `arrived`. Both
# are _thread locks: a parked thread calls nothing but C from the moment its
# ident is listed, so its innermost frame (parked()'s) is the same object
# from then on, whenever the checker looks.
gate = _thread.allocate_lock()
gate.acquire()
arrived = _thread.allocate_lock()
arrived.acquire()
progress = threading.Event()  # set by the churners as each batch starts
parked_idents: list[int] = []

libc = ctypes.CDLL(None, use_errno=True)
START = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
libc.pthread_create.argtypes = [
    ctypes.POINTER(ctypes.c_ulong),
    ctypes.c_void_p,
    START,
    ctypes.c_void_p,
]
libc.pthread_join.argtypes = [ctypes.c_ulong, ctypes.c_void_p]


def parked() -> None:
    parked_idents.append(threading.get_ident())
    if len(parked_idents) == 2 * PARKED:
        arrived.release()
    gate.acquire()
    gate.release()  # the next parked thread goes too


def parked_c_thread(_: object) -> None:
    parked()


def passing_c_thread(_: object) -> None:
    sum(range(100))


# Kept alive as long as the threads that call them.
PARKED_START = START(parked_c_thread)
PASSING_START = START(passing_c_thread)


def c_thread(start: object) -> int:
    ident = ctypes.c_ulong()
    error = libc.pthread_create(ctypes.byref(ident), None, start, None)
    assert error == 0, error
    return ident.value


churned = {"threads": 0, "c_threads": 0}


def churn_threads() -> None:
    while not done.is_set():
        churned["threads"] += 10
        batch = [threading.Thread(target=sum, args=(range(50),)) for _ in range(10)]
        for thread in batch:
            thread.start()
        progress.set()
        for thread in batch:
            thread.join()


def churn_c_threads() -> None:
    while not done.is_set():
        churned["c_threads"] += 10
        idents = [c_thread(PASSING_START) for _ in range(10)]
        progress.set()
        for ident in idents:
            libc.pthread_join(ident, None)


misses = [0]


def check(round_failures: list[str]) -> int:
    """One round; the number of lookups made."""
    with frames_guarded():
        find = _native.thread_frame_finder()
        if find is None:
            round_failures.append("no finder")
            return 0
        frames = sys._current_frames()
        try:
            lookups = 0
            for ident in parked_idents:
                lookups += 1
                found = find(ident)
                if found is None:
                    misses[0] += 1
                elif found is not frames[ident]:
                    round_failures.append(f"parked thread {ident}: another frame")
                del found
            lookups += 2
            mine = find(threading.get_ident())
            if mine is None:
                misses[0] += 1
            elif mine is not sys._getframe():
                round_failures.append("the calling thread: not its caller's frame")
            del mine
            unknown = max(frames) + 1
            if find(unknown) is not None:
                round_failures.append(f"ident {unknown} no thread has: found a frame")
            return lookups
        finally:
            del frames


parked_threads = [threading.Thread(target=parked) for _ in range(PARKED)]
for thread in parked_threads:
    thread.start()
parked_c_idents = [c_thread(PARKED_START) for _ in range(PARKED)]
assert arrived.acquire(timeout=60), "the parked threads did not all arrive"
churners = [threading.Thread(target=churn_threads), threading.Thread(target=churn_c_threads)]
for thread in churners:
    thread.start()

failures: list[str] = []
rounds = lookups = 0
while min(churned.values()) < churn:
    lookups += check(failures)
    rounds += 1
    progress.wait(timeout=1)  # the churners' next batch has started (runs during the next round)
    progress.clear()

done.set()
gate.release()
for thread in churners + parked_threads:
    thread.join()
for ident in parked_c_idents:
    libc.pthread_join(ident, None)
print(
    "RESULT "
    + json.dumps(
        {
            "state": _native._finder_state,
            "rounds": rounds,
            "lookups": lookups,
            "churned": churned,
            "misses": misses[0],
            "failures": sorted(set(failures)),
        }
    ),
    flush=True,
)
