"""Stops that leave their thread through a Future become ordinary exceptions.

A ThreadPoolExecutor worker catches whatever its task raises, a stop
exception included, and stores it in the task's Future; whoever calls
`future.result()` re-raises it in *their* thread. A BaseException there
escapes the `except Exception:` that programs wrap around results (gunicorn's
gthread worker does, in its main loop) and ends the wrong thread: one forced
request ended the whole worker process. So the Future stores a TaskStopped
(an Exception, caused by the stop) instead, and the stopped thread is told
that its task is over (it goes on to its next one).

This wraps concurrent.futures.Future.set_exception once per process, for the
host's threadctl and for one-shot jobs alike: a later patch adds its
exception types to the same wrapper instead of wrapping again, so repeated
one-shot stops do not pile up. Every other exception passes through
untouched. asyncio's run_in_executor futures copy the converted exception.
Only a concurrent.futures already imported is patched (an import would be
left behind in a one-shot target; a module imported later is the host's
business, which patches at install()).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    # (stop exception types, TaskStopped class, callback run in the stopped thread)
    Rule = tuple[tuple[type[BaseException], ...], type[Exception], Callable[[], None]]


def patch(
    stop_types: tuple[type[BaseException], ...],
    task_stopped: type[Exception],
    on_left: Callable[[], None],
) -> bool:
    """Make Future.set_exception store `task_stopped` for `stop_types`, calling
    `on_left()` in the storing thread first. False if concurrent.futures is
    not imported (nothing was patched)."""
    base = sys.modules.get("concurrent.futures._base")
    if base is None:
        return False
    future = base.Future
    current = future.set_exception
    rules: list[Rule] | None = getattr(current, "_threadctl_rules", None)
    if rules is None:
        rules = []
        original = current

        def set_exception(self: object, exception: BaseException | None) -> None:
            for types, converted, left in rules:
                if isinstance(exception, types):
                    stopped = converted(f"the task was stopped by threadctl ({exception})")
                    stopped.__cause__ = exception
                    left()
                    exception = stopped.with_traceback(exception.__traceback__)
                    break
            original(self, exception)

        set_exception.__doc__ = original.__doc__
        # Marks on our own wrapper (functools.wraps' attribute, and our rules).
        set_exception.__wrapped__ = original  # type: ignore[attr-defined]
        set_exception._threadctl_rules = rules  # type: ignore[attr-defined]
        future.set_exception = set_exception
    if not any(rule[0] == stop_types for rule in rules):
        rules.append((stop_types, task_stopped, on_left))
    return True
