"""A queue consumer that never loses an item when its thread is stopped.

The danger it removes: a consumer forced to stop right after `Queue.get()`
returned loses the item it took. Here, taking an item and recording it as in
flight happen in one critical section (a forced stop cannot fall between
them), and whatever stops the thread while an item is in flight (a forced
stop in the handler, or ThreadStopped from check_stop()) puts the item back
on the queue, or hands it to the caller's dead-letter callback, before the
thread unwinds. Delivery is therefore at least once: an item whose handler
was interrupted is handled again, maybe by another consumer.

Handing back never blocks for long: a bounded queue that stays full (its
other consumers stopped too, say by stop_all) gets the item over its bound
after HAND_BACK_SECONDS, instead of a thread that hangs in put() and can
never be stopped again (issue 18.10).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import TypeVar, cast

from threadctl._force import critical, stop_loop
from threadctl._waits import STOPPED, get

T = TypeVar("T")

_NOTHING = object()
# How long a hand-back waits for room in a full bounded queue.
HAND_BACK_SECONDS = 1.0


@stop_loop
def consume(
    q: queue.Queue[T],
    handler: Callable[[T], object],
    *,
    dead_letter: Callable[[T, BaseException], object] | None = None,
) -> int:
    """Take items from `q` and call `handler(item)` until a stop is requested.

    A cooperative stop ends the loop between items (the item in the handler
    is finished first). A stop that interrupts the handler (a forced stop, or
    ThreadStopped raised by the handler) returns the item to the queue with
    `q.put(item)` (at the back: order is not kept; past the queue's maxsize
    if it stays full for HAND_BACK_SECONDS), or passes it to
    `dead_letter(item, exception)` if given, then lets the exception unwind
    the thread. Items are marked `task_done()` once handled or handed back,
    so `q.join()` stays balanced. Exceptions of the handler other than stops
    propagate as they are, after the item was handed back the same way.

    Returns:
        How many items were handled, when the loop ends by a cooperative stop.
    """
    handled = 0
    item: object = _NOTHING
    try:
        while True:
            with critical():
                item = taken = get(q)
            if taken is STOPPED:
                return handled
            handler(taken)
            with critical():
                item = _NOTHING
                q.task_done()
                handled += 1
    except BaseException as error:
        with critical():
            if item is not _NOTHING and item is not STOPPED:
                _hand_back(q, cast("T", item), error, dead_letter)
        raise


def _hand_back(
    q: queue.Queue[T],
    item: T,
    error: BaseException,
    dead_letter: Callable[[T, BaseException], object] | None,
) -> None:
    if dead_letter is None:
        _put_back(q, item)
    else:
        dead_letter(item, error)
    q.task_done()


def _put_back(q: queue.Queue[T], item: T) -> None:
    """q.put(item), over the queue's bound if it stays full: what Queue.put
    does once there is room, without waiting for it (`_put` is the hook
    Queue documents for subclasses)."""
    try:
        q.put(item, timeout=HAND_BACK_SECONDS)
    except queue.Full:
        with q.mutex:
            q._put(item)
            q.unfinished_tasks += 1
            q.not_empty.notify()
