"""Plain records of the event loops and their pending tasks: what each task
awaits, its await chain, which tasks await which (read by _core.tasks),
with the host's ids, loop threads and probes.

Hazard: the task a loop runs right now executes in its loop's thread while
this reads its frames; everything here runs inside frames_guarded() (see
_core.frames), and keeps no frame once it returns.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from threadctl._core import tasks as core
from threadctl._core.frames import FrameInfo, frames_guarded
from threadctl._core.procfs import native_id_of
from threadctl._tasks import found, probe
from threadctl.errors import ThreadNotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    import threading


class TaskState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    CANCELLING = "cancelling"
    DONE = "done"


class LoopSnapshot(NamedTuple):
    loop_id: int
    loop_class: str
    running: bool
    thread_ident: int = 0
    thread_native_id: int = 0
    thread_name: str = ""
    stalled_seconds: float = 0.0
    current_task_id: int = 0


class TaskSnapshot(NamedTuple):
    task_id: int
    name: str
    coroutine: str
    state: TaskState
    loop_id: int
    awaiting: str = ""
    awaiting_task_id: int = 0
    awaited_by: tuple[int, ...] = ()
    stack: tuple[FrameInfo, ...] | None = None  # innermost last; None: not asked for
    first_seen_at: float = 0.0
    cancel_requests: int = 0


class Listing(NamedTuple):
    loops: list[LoopSnapshot]
    tasks: list[TaskSnapshot]


def list_tasks(include_stacks: bool = False, thread: int = 0) -> Listing:
    """Every loop with a pending task, and those tasks (only the loop run by
    thread `thread`, a TID or an ident, if not 0), loops in the order first
    seen, tasks by id. The loops are probed first (see probe); a probe that
    runs also tells the thread of a loop that does not record it.

    Raises:
        ThreadNotFound: `thread` runs no loop with pending tasks.
    """
    tasks = core.pending_tasks()
    loops = list({id(loop): loop for loop in (task.get_loop() for task in tasks)}.values())
    stalled = probe.stalls(loops)
    with frames_guarded():
        runners = {loop: found.loop_thread(loop) for loop in loops}
        if thread:
            runners = {loop: runner for loop, runner in runners.items() if _is(runner, thread)}
            tasks = [task for task in tasks if task.get_loop() in runners]
        loop_records = [
            _loop_snapshot(loop, runner, stalled.get(loop, 0.0)) for loop, runner in runners.items()
        ]
        task_records = _task_snapshots(tasks, include_stacks)
    if thread and not loop_records:
        raise ThreadNotFound(f"no event loop with pending tasks runs in thread {thread}")
    loop_records.sort(key=lambda loop: loop.loop_id)
    task_records.sort(key=lambda task: task.task_id)
    return Listing(loop_records, task_records)


def describe(task: asyncio.Task[object], include_stacks: bool = True) -> TaskSnapshot:
    """One task's record (also a finished one's)."""
    with frames_guarded():
        return _task_snapshots([task], include_stacks)[0]


def _is(runner: threading.Thread | None, thread: int) -> bool:
    return runner is not None and thread in (native_id_of(runner), runner.ident)


def _loop_snapshot(
    loop: asyncio.AbstractEventLoop, runner: threading.Thread | None, stalled: float
) -> LoopSnapshot:
    cls = type(loop)
    current = core.current_task(loop)
    return LoopSnapshot(
        loop_id=_loop_id(loop),
        loop_class=f"{cls.__module__}.{cls.__qualname__}",
        running=loop.is_running(),
        thread_ident=runner.ident or 0 if runner is not None else 0,
        thread_native_id=native_id_of(runner) if runner is not None else 0,
        thread_name=runner.name if runner is not None else "",
        stalled_seconds=stalled,
        current_task_id=found.task_ids.of(current)[0] if current is not None else 0,
    )


def _task_snapshots(tasks: list[asyncio.Task[object]], include_stacks: bool) -> list[TaskSnapshot]:
    """Records of `tasks`; call inside frames_guarded()."""
    seen = {id(task): found.task_ids.of(task) for task in tasks}
    described = core.records(tasks, _task_id, _loop_id, include_stacks)
    return [
        TaskSnapshot(
            task_id=record["task_id"],
            name=record["name"],
            coroutine=record["coroutine"],
            state=TaskState(record["state"]),
            loop_id=record["loop_id"],
            awaiting=record["awaiting"],
            awaiting_task_id=record["awaiting_task_id"],
            awaited_by=tuple(record["awaited_by"]),
            stack=None if record["stack"] is None else tuple(record["stack"]),
            first_seen_at=seen[id(task)][1],
            cancel_requests=record["cancel_requests"],
        )
        for task, record in zip(tasks, described, strict=True)
    ]


def _task_id(task: asyncio.Task[object]) -> int:
    return found.task_ids.of(task)[0]


def _loop_id(loop: asyncio.AbstractEventLoop) -> int:
    return found.loop_ids.of(loop)[0]
