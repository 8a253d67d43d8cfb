"""Thread-side helpers: how a thread learns that it was asked to stop.

Any thread can call these without registering first; the first call marks the
thread as cooperative in listings, so an operator knows a cooperative stop
will be noticed.
"""

from __future__ import annotations

import math

from threadctl._force import install_quiet_excepthook
from threadctl._registry import registry
from threadctl.errors import ThreadStopped


def stop_requested() -> bool:
    """True once a stop has been requested for the calling thread."""
    return registry.current().stop_is_requested


def check_stop() -> None:
    """Raise ThreadStopped if a stop has been requested for the calling thread.

    For code that prefers unwinding by exception (through its `finally` and
    `with` blocks) to testing a flag at every level.
    """
    if registry.current().stop_is_requested:
        install_quiet_excepthook()
        raise ThreadStopped("stop requested")


def sleep(seconds: float) -> bool:
    """Sleep like time.sleep, but wake as soon as a stop is requested.

    The thread waits on its stop flag (an Event), so it uses no CPU and wakes
    within microseconds of the request.

    Args:
        seconds: How long to sleep; must be a finite number >= 0.

    Returns:
        True if a stop was requested (before or during the sleep): the caller
        should wind down. False if the full time elapsed.

    Raises:
        ValueError: `seconds` is negative or not finite.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"sleep length must be a finite number >= 0, not {seconds!r}")
    return registry.current().stop_event().wait(seconds)


def clear_stop() -> None:
    """Forget a stop request for the calling thread, after handling it.

    For long-lived worker threads that handle a stop of their current task and
    then take new work (a ThreadPoolExecutor worker whose task was stopped):
    without this, its stop flag stays set and every later stop-aware wait on
    it returns at once.
    """
    registry.clear_stop(registry.current())
