"""Stops that leave their thread through a Future become ordinary exceptions.

A ThreadPoolExecutor worker catches whatever its task raises, a stop
exception included, and stores it in the task's Future; whoever calls
`future.result()` re-raises it in *their* thread. A BaseException there
escapes the `except Exception:` that programs wrap around results (gunicorn's
gthread worker does, in its main loop) and ends the wrong thread: one forced
request ended the whole worker process. So the Future stores
threadctl.TaskStopped (an Exception, caused by the stop) instead, and the
stop request of the worker thread is over: it goes on to its next task.

This wraps concurrent.futures.Future.set_exception, once, for the process
(at install() and at the first forced stop); every other exception passes
through untouched. asyncio's run_in_executor futures copy the converted
exception, so an awaiting coroutine sees TaskStopped too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from threadctl.errors import TaskStopped, ThreadStopped

_original: Callable[[Future[Any], BaseException | None], None] | None = None


def patch(stop_left_thread: Callable[[], None]) -> None:
    """Make Future.set_exception convert stop exceptions (idempotent).

    `stop_left_thread` runs, in the thread that stores the exception, before
    the future completes: it ends that thread's stop request.
    """
    global _original
    if _original is not None:
        return
    original = _original = Future.set_exception

    @functools.wraps(original)
    def set_exception(self: Future[Any], exception: BaseException | None) -> None:
        if isinstance(exception, ThreadStopped):
            stopped = TaskStopped(f"the task was stopped by threadctl ({exception})")
            stopped.__cause__ = exception
            exception = stopped.with_traceback(exception.__traceback__)
            stop_left_thread()
        original(self, exception)

    Future.set_exception = set_exception  # type: ignore[method-assign]
