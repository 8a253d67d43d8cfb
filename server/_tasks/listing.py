"""Plain records of the event loops and their pending tasks: what each task
awaits, its await chain, which tasks await which.

What a task awaits is read off its coroutine chain (`cr_await` from the
task's coroutine inward): the first frame in asyncio's own code names the
call the application made ("asyncio.Queue.get"); the future the task waits
on (`Task._fut_waiter`, in both Task implementations) says whether that is
another task. A TaskGroup's children are awaited by the group's parent task
(found through the done callback the group adds to each child).

Hazard: the task a loop runs right now executes in its loop's thread while
this reads its frames; everything here runs inside frames_guarded() (see
_core.frames), and keeps no frame once it returns.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, TypeGuard

from threadctl._core.frames import MAX_DEPTH, FrameInfo, frames_guarded, qualname
from threadctl._core.procfs import native_id_of
from threadctl._tasks import found, probe

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    import threading
    from types import CodeType, FrameType


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
    runs also tells the thread of a loop that does not record it."""
    tasks = found.pending_tasks()
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
    current = found.current_task(loop)
    return LoopSnapshot(
        loop_id=found.loop_ids.of(loop)[0],
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
    ids = {id(task): found.task_ids.of(task) for task in tasks}
    awaited_by: dict[int, list[int]] = {}
    described = []
    for task in tasks:
        number = ids[id(task)][0]
        waiter = _waiter(task)
        awaited = found.task_ids.of(waiter)[0] if _is_task(waiter) else 0
        if awaited:
            awaited_by.setdefault(awaited, []).append(number)
        for parent in _group_parents(task):
            awaited_by.setdefault(number, []).append(found.task_ids.of(parent)[0])
        described.append((task, number, awaited))
    return [
        _task_snapshot(task, number, ids[id(task)][1], awaited, awaited_by, include_stacks)
        for task, number, awaited in described
    ]


def _task_snapshot(
    task: asyncio.Task[object],
    number: int,
    first_seen: float,
    awaited: int,
    awaited_by: dict[int, list[int]],
    include_stacks: bool,
) -> TaskSnapshot:
    loop = task.get_loop()
    cancelling = _cancel_requests(task)
    if task.done():
        state = TaskState.DONE
    elif found.current_task(loop) is task:
        state = TaskState.RUNNING
    elif cancelling:
        state = TaskState.CANCELLING
    else:
        state = TaskState.PENDING
    frames = chain(task) if state is not TaskState.DONE else []
    awaiting = ""
    if state is not TaskState.RUNNING and state is not TaskState.DONE:
        awaiting = _asyncio_call(frames) or (
            f"task {awaited}" if awaited else "a future" if _waiter(task) is not None else ""
        )
    stack = None
    if include_stacks:
        stack = tuple(
            FrameInfo(f.f_code.co_filename, f.f_lineno or 0, qualname(f.f_code)) for f in frames
        )
    return TaskSnapshot(
        task_id=number,
        name=task.get_name(),
        coroutine=coroutine_name(task),
        state=state,
        loop_id=found.loop_ids.of(loop)[0],
        awaiting=awaiting,
        awaiting_task_id=awaited,
        awaited_by=tuple(sorted(awaited_by.get(number, ()))),
        stack=stack,
        first_seen_at=first_seen,
        cancel_requests=cancelling,
    )


def chain(task: asyncio.Task[object]) -> list[FrameType]:
    """The task's frames, outermost (its coroutine's) first: for a suspended
    task its await chain; for the one its loop runs now, the loop thread's
    frames from the coroutine's inward. Call inside frames_guarded()."""
    awaitable: object = task.get_coro()
    outermost = _frame_of(awaitable)
    if outermost is None:
        return []
    if found.current_task(task.get_loop()) is task:
        stepping = found.stepping_thread(task)
        return stepping[1] if stepping is not None else [outermost]
    frames: list[FrameType] = []
    while awaitable is not None and len(frames) < MAX_DEPTH:
        frame = _frame_of(awaitable)
        if frame is None:
            break  # a C awaitable (a future's iterator)
        frames.append(frame)
        awaitable = _awaits(awaitable)
    return frames


def _frame_of(awaitable: object) -> FrameType | None:
    for name in ("cr_frame", "gi_frame", "ag_frame"):
        frame: FrameType | None = getattr(awaitable, name, None)
        if frame is not None:
            return frame
    return None


def _awaits(awaitable: object) -> object:
    for name in ("cr_await", "gi_yieldfrom", "ag_await"):
        inner = getattr(awaitable, name, None)
        if inner is not None:
            return inner
    return None


def _asyncio_call(frames: list[FrameType]) -> str:
    """The asyncio function the task's own code called, by its qualified
    name ("asyncio.Queue.get"), "" if it awaits none."""
    for frame in frames:
        module = frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith("asyncio."):
            return f"asyncio.{_qualname_in(frame.f_code, frame.f_globals)}"
    return ""


_QUALNAMES: dict[CodeType, str] = {}  # asyncio's code objects only: bounded


def _qualname_in(code: CodeType, module: dict[str, object]) -> str:
    """The qualified name of a function of `module` (CPython 3.10 has no
    co_qualname: the class is found by the code object, not by the frame's
    `self`, which would mean reading the locals of a frame that may run)."""
    known: str | None = getattr(code, "co_qualname", None) or _QUALNAMES.get(code)
    if known is None:
        known = code.co_name
        for value in list(module.values()):
            if isinstance(value, type) and any(
                getattr(member, "__code__", None) is code for member in vars(value).values()
            ):
                known = f"{value.__qualname__}.{code.co_name}"
                break
        _QUALNAMES[code] = known
    return known


def coroutine_name(task: asyncio.Task[object]) -> str:
    """The qualified name of the task's coroutine function."""
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None)
    return name if isinstance(name, str) else type(coro).__qualname__


def _waiter(task: asyncio.Task[object]) -> object:
    return getattr(task, "_fut_waiter", None)


def _is_task(thing: object) -> TypeGuard[asyncio.Task[object]]:
    return thing is not None and hasattr(thing, "get_coro") and hasattr(thing, "get_loop")


def _group_parents(task: asyncio.Task[object]) -> list[asyncio.Task[object]]:
    """The parent tasks of the TaskGroups `task` belongs to (a group adds its
    _on_task_done to each child's done callbacks)."""
    parents: list[asyncio.Task[object]] = []
    for entry in getattr(task, "_callbacks", None) or ():
        callback = entry[0] if isinstance(entry, tuple) else entry
        parent = getattr(getattr(callback, "__self__", None), "_parent_task", None)
        if _is_task(parent):
            parents.append(parent)
    return parents


def _cancel_requests(task: asyncio.Task[object]) -> int:
    cancelling = getattr(task, "cancelling", None)
    if cancelling is not None:
        return int(cancelling())
    return 1 if getattr(task, "_must_cancel", False) else 0
