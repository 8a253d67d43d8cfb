"""Is a loop turning? A callback scheduled on it with call_soon_threadsafe
runs at its next turn: within microseconds on a loop that waits for I/O or
runs short steps, late on a loop one step of which blocks (a coroutine that
never awaits, a blocking call in a callback).

Probes are sent only by a listing: a loop nobody lists gets nothing from
threadctl, no recurring heartbeat. A probe that has not run by a later
listing is not sent again; that listing reports how long it has waited.
"""

from __future__ import annotations

import threading
import time
import weakref

from threadctl._tasks import found

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio

# How long a listing waits for the probes it sends: a loop that has not run
# one by then is reported as stalled.
PROBE_WAIT = 0.1


class _Probe:
    __slots__ = ("loop", "ran", "sent_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.sent_at = time.monotonic()
        self.ran = threading.Event()

    def run(self) -> None:
        """In the loop's thread, at its next turn."""
        loop = self.loop()
        if loop is not None:
            found.note_running_thread(loop)
        self.ran.set()


_lock = threading.Lock()
_outstanding: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Probe] = (
    weakref.WeakKeyDictionary()
)


def stalls(loops: list[asyncio.AbstractEventLoop]) -> dict[asyncio.AbstractEventLoop, float]:
    """The running loops among `loops` that have not turned for PROBE_WAIT
    seconds or more, with how long they have not (at least)."""
    stalled: dict[asyncio.AbstractEventLoop, float] = {}
    sent = []
    for loop in loops:
        if not loop.is_running() or found.running_here(loop):
            continue  # not turning at all, or turning in this very call
        with _lock:
            probe = _outstanding.get(loop)
        if probe is not None and not probe.ran.is_set():
            stalled[loop] = time.monotonic() - probe.sent_at  # sent by an earlier listing
            continue
        probe = _Probe(loop)
        try:
            loop.call_soon_threadsafe(probe.run)
        except RuntimeError:  # closed meanwhile
            continue
        with _lock:
            _outstanding[loop] = probe
        sent.append((loop, probe))
    deadline = time.monotonic() + PROBE_WAIT
    for loop, probe in sent:
        if not probe.ran.wait(max(0.0, deadline - time.monotonic())):
            stalled[loop] = time.monotonic() - probe.sent_at
    return stalled
