"""Threads that die of a stop exception end quietly: no traceback on stderr.

A thread a forced stop ends was asked to end; a traceback there would read as
a crash. threading.excepthook is chained (every other exception reaches the
hook that was there before) and installed once per process: the host's
threadctl and one-shot jobs add their exception types to the same hook, so
repeated one-shot stops do not pile up hooks. If the host replaces the hook
later, its hook sees our exceptions too; nothing else changes.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    Ended = Callable[[threading.ExceptHookArgs], None]


def install(stop_types: tuple[type[BaseException], ...], on_ended: Ended) -> None:
    """Swallow `stop_types` in threading.excepthook, calling `on_ended(args)`
    instead (an audit record). Needs `threading` imported (a thread to stop
    implies it)."""
    if TYPE_CHECKING:
        import threading
    else:
        threading = sys.modules["threading"]
    current = threading.excepthook
    rules: list[tuple[tuple[type[BaseException], ...], Ended]] | None = getattr(
        current, "_threadctl_rules", None
    )
    if rules is None:
        rules = []
        previous = current

        def quiet(args: threading.ExceptHookArgs) -> None:
            for types, ended in rules:
                if args.exc_type is not None and issubclass(args.exc_type, types):
                    ended(args)
                    return
            previous(args)

        quiet._threadctl_rules = rules  # type: ignore[attr-defined]  # our mark on our hook
        threading.excepthook = quiet
    if not any(rule[0] == stop_types for rule in rules):
        rules.append((stop_types, on_ended))
