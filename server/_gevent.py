"""gevent: threadctl's server needs real OS threads, and monkey-patching takes them.

gRPC's Python server runs on OS threads (its serve thread, threadctl's RPC
pool) and keeps making locks, conditions and events from `threading` while it
serves. Once gevent has patched `threading`, those are greenlet primitives,
waited on from OS threads whose gevent hub nobody runs. Measured (grpcio
1.85.3, gevent 26.9, CPython 3.11): a server started before `patch_all()`
answered one call and cancelled the next ("Cancelling all calls"), and its
close() at exit died of gevent's LoopExit, leaving its token file behind;
issue 13.3 saw such a process hang until SIGKILL. Installing before the patch
does not help: patch_all() replaces `threading` under the running server. So:

- install() refuses at once in a process whose `threading` is patched
  (`UnsupportedRuntime`, see `refuse_if_patched`).
- A server that runs when the program starts to patch `threading` (the usual
  case under `python -m threadctl app.py`, where the app calls patch_all()
  itself) closes first, while `threading` is still real, and says so in one
  warning (`PatchGuard`). The program then runs on without threadctl.

gevent announces a patch through zope.event before it patches anything
(GeventWillPatchAllEvent, GeventWillPatchModuleEvent). gevent is never
imported here: the guard subscribes once zope.event is loaded, which gevent
does when its `gevent.events` module is first imported (at the first patch,
not at `import gevent`). A finder on sys.meta_path watches for that one name
and steps aside at once; it finds nothing itself.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from threadctl.errors import UnsupportedRuntime

logger = logging.getLogger("threadctl")

# The modules whose patch takes real threads away (names as gevent uses them:
# patch_all()'s argument, then the modules patch_thread() replaces).
_THREAD_MODULES = frozenset({"thread", "_thread", "threading"})
_EVENTS_MODULE = "gevent.events"

REFUSED = (
    "gevent has monkey-patched threading in this process: threadctl's gRPC server needs"
    " real OS threads and would deadlock on gevent's locks, so no server was started."
    " Installing before the patch does not help either (patch_all() replaces threading"
    " under a running server, which then closes itself). One-shot commands work:"
    " `threadctl list --pid {pid} --attach`"
)
CLOSING = (
    "threadctl: warning: gevent is about to monkey-patch threading, which would deadlock"
    " threadctl's gRPC server (it needs real OS threads): the control server is closed and"
    " the program runs on without it; one-shot `threadctl list --pid {pid} --attach` works"
)


def threading_patched() -> bool:
    """Whether gevent has patched `threading` here (never imports gevent)."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("threading"))


def refuse_if_patched(pid: int) -> None:
    """Raises:
    UnsupportedRuntime: gevent has patched `threading` in this process.
    """
    if threading_patched():
        raise UnsupportedRuntime(REFUSED.format(pid=pid))


class PatchGuard:
    """Calls `close` (once) just before gevent patches `threading`.

    arm() after the server starts, disarm() when it closes: nothing of the
    guard stays behind (no subscriber, no finder), except when the close comes
    from a notification: then the subscriber stays, inert, since removing it
    while zope.event iterates its list would skip the subscriber after it.
    `close` runs in the thread that patches, before the patch, so it may wait
    for threadctl's threads.
    """

    def __init__(self, close: Callable[[], None], pid: int) -> None:
        self._close = close
        self._pid = pid
        self._armed = False
        self._fired = False
        self._finder = _EventsImportWatch(self._subscribe)
        self._subscribers: list[object] | None = None

    def arm(self) -> None:
        self._armed = True
        events = sys.modules.get("zope.event")
        if events is not None:
            self._subscribe(events)
        else:
            sys.meta_path.insert(0, self._finder)

    def disarm(self) -> None:
        self._armed = False
        with contextlib.suppress(ValueError):  # not there, or already taken
            sys.meta_path.remove(self._finder)
        if self._subscribers is not None and not self._fired:
            with contextlib.suppress(ValueError):  # a close in another thread took it
                self._subscribers.remove(self._notified)
            self._subscribers = None

    def _subscribe(self, events: ModuleType) -> None:
        if self._armed and self._subscribers is None:
            self._subscribers = events.subscribers
            self._subscribers.append(self._notified)

    def _notified(self, event: object) -> None:
        if not self._armed or not _patches_threading(event):
            return
        self._fired = True
        self.disarm()
        if os.getpid() != self._pid:
            return  # a forked child (a gevent worker): the server was never its own
        logger.warning(CLOSING.format(pid=self._pid))
        close, self._close = self._close, _closed  # the inert subscriber holds no server
        close()


def _closed() -> None:
    """What a guard that has fired calls: nothing."""


def _patches_threading(event: object) -> bool:
    """Whether `event` announces a patch of `threading` (or `_thread`)."""
    events = sys.modules.get(_EVENTS_MODULE)
    if events is None:
        return False
    if isinstance(event, events.GeventWillPatchAllEvent):
        return bool(event.will_patch_module("thread"))
    if isinstance(event, events.GeventWillPatchModuleEvent):
        return event.module_name in _THREAD_MODULES
    return False


class _EventsImportWatch:
    """A meta-path finder that never finds anything: when `gevent.events` is
    about to be imported, it loads zope.event (the first thing gevent.events
    imports), hands it to `found`, and leaves sys.meta_path."""

    def __init__(self, found: Callable[[ModuleType], None]) -> None:
        self._found = found

    def find_spec(self, name: str, path: Sequence[str] | None, target: object = None) -> None:
        if name != _EVENTS_MODULE:
            return None
        with contextlib.suppress(ValueError):  # a disarm in another thread took it
            sys.meta_path.remove(self)
        try:
            events = importlib.import_module("zope.event")
        except ImportError:
            return None  # gevent.events will fail the same way, and nothing patches
        self._found(events)
        return None
