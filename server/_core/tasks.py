"""asyncio tasks as asyncio's own objects describe them: which are pending,
what each awaits, its await chain, which tasks await which.

Shared by the host's ListTasks (threadctl._tasks, which adds ids that are
never reused, loop threads and probes) and by a one-shot job inside a
process without threadctl (client/attach/target/plain.py).

Tasks are found in asyncio's own registries (`asyncio.tasks._all_tasks` on
CPython 3.10 and 3.11, `_scheduled_tasks` and `_eager_tasks` from 3.12),
which the C and the pure-Python Task both register in: so tasks created
before threadctl was there are found, in loops of any thread, and nothing
runs inside the loops to find them. asyncio is never imported here: a
process that has not imported it has no tasks.

What a task awaits is read off its coroutine chain (`cr_await` from the
task's coroutine inward): the first frame in asyncio's own code names the
call the application made ("asyncio.Queue.get"); the future the task waits
on (`Task._fut_waiter`, in both Task implementations) says whether that is
another task. A TaskGroup's children are awaited by the group's parent task
(found through the done callback the group adds to each child).

Hazards:
- every loop's thread writes those registries without a lock; a copy taken
  from another thread can meet "changed size during iteration" and is taken
  again, as asyncio.all_tasks() does;
- the task a loop runs right now executes in its loop's thread while this
  reads its frames: the frame functions run inside frames_guarded(), and
  keep no frame once the caller's guard ends.
"""

from __future__ import annotations

import sys

from .frames import MAX_DEPTH, FrameInfo, qualname

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from types import CodeType, FrameType
    from typing import TypedDict, TypeGuard

    Task = asyncio.Task[object]

    class TaskFields(TypedDict):
        """A task's record, in the proto's TaskRecord field names (but
        `first_seen_at`, which only the host knows)."""

        task_id: int
        name: str
        coroutine: str
        state: str  # "pending", "running", "cancelling" or "done"
        loop_id: int
        awaiting: str
        awaiting_task_id: int
        awaited_by: list[int]
        stack: list[FrameInfo] | None  # innermost last; None: not asked for
        cancel_requests: int


_REGISTRIES = ("_all_tasks", "_scheduled_tasks", "_eager_tasks")
_COPY_ATTEMPTS = 1000


def pending_tasks() -> list[Task]:
    """Every task of the process that has not finished, in no set order."""
    tasks_module = sys.modules.get("asyncio.tasks")
    if tasks_module is None:
        return []
    registries = [getattr(tasks_module, name, ()) for name in _REGISTRIES]
    found: list[Task] = []
    for _ in range(_COPY_ATTEMPTS):
        try:
            found = [task for registry in registries for task in list(registry)]
            break
        except RuntimeError:  # a loop's thread added or removed one meanwhile
            continue
    return [task for task in dict.fromkeys(found) if not task.done()]


def current_task(loop: asyncio.AbstractEventLoop) -> Task | None:
    """The task `loop` runs a step of right now (asyncio.current_task(loop),
    which reads a dict and may be called from any thread)."""
    tasks_module = sys.modules.get("asyncio.tasks")
    if tasks_module is None:
        return None
    task: Task | None = tasks_module.current_task(loop)
    return task


def stepping(task: Task) -> tuple[int, list[FrameType]] | None:
    """The ident of the thread running a step of `task` now, and its frames
    from the task's coroutine's inward (outermost first): the thread whose
    stack holds that coroutine's frame, which is true of any loop. None if
    no thread does (the step ended meanwhile). Call inside frames_guarded()."""
    outermost = _frame_of(task.get_coro())
    if outermost is None:
        return None
    for ident, innermost in sys._current_frames().items():
        frame: FrameType | None = innermost
        inner: list[FrameType] = []
        while frame is not None and frame is not outermost and len(inner) < MAX_DEPTH:
            inner.append(frame)
            frame = frame.f_back
        if frame is outermost:
            return ident, [outermost, *reversed(inner)]
    return None


def running_thread(loop: asyncio.AbstractEventLoop) -> int:
    """The ident of the thread running `loop`, 0 if it is not running or
    that cannot be told: asyncio's own loops record it (`_thread_id`); for
    the others (uvloop) it is the thread running a step of the loop's
    current task. Call inside frames_guarded()."""
    if not loop.is_running():
        return 0
    ident = getattr(loop, "_thread_id", None)
    if isinstance(ident, int):
        return ident
    current = current_task(loop)
    found = stepping(current) if current is not None else None
    return found[0] if found is not None else 0


def chain(task: Task) -> list[FrameType]:
    """The task's frames, outermost (its coroutine's) first: for a suspended
    task its await chain; for the one its loop runs now, the loop thread's
    frames from the coroutine's inward. Call inside frames_guarded()."""
    awaitable: object = task.get_coro()
    outermost = _frame_of(awaitable)
    if outermost is None:
        return []
    if current_task(task.get_loop()) is task:
        found = stepping(task)
        return found[1] if found is not None else [outermost]
    frames: list[FrameType] = []
    while awaitable is not None and len(frames) < MAX_DEPTH:
        frame = _frame_of(awaitable)
        if frame is None:
            break  # a C awaitable (a future's iterator)
        frames.append(frame)
        awaitable = _awaits(awaitable)
    return frames


def records(
    tasks: list[Task],
    number: Callable[[Task], int],
    loop_number: Callable[[asyncio.AbstractEventLoop], int],
    include_stacks: bool,
) -> list[TaskFields]:
    """A record of each of `tasks`, tasks and loops named by `number` and
    `loop_number`. Call inside frames_guarded()."""
    numbers = {id(task): number(task) for task in tasks}
    awaited_by: dict[int, list[int]] = {}
    awaited: dict[int, int] = {}
    for task in tasks:
        mine = numbers[id(task)]
        waiter = _waiter(task)
        awaited[mine] = number(waiter) if is_task(waiter) else 0
        if awaited[mine]:
            awaited_by.setdefault(awaited[mine], []).append(mine)
        for parent in _group_parents(task):
            awaited_by.setdefault(mine, []).append(number(parent))
    return [
        _record(task, numbers[id(task)], awaited, awaited_by, loop_number, include_stacks)
        for task in tasks
    ]


def _record(
    task: Task,
    mine: int,
    awaited: dict[int, int],
    awaited_by: dict[int, list[int]],
    loop_number: Callable[[asyncio.AbstractEventLoop], int],
    include_stacks: bool,
) -> TaskFields:
    loop = task.get_loop()
    cancelling = cancel_requests(task)
    if task.done():
        state = "done"
    elif current_task(loop) is task:
        state = "running"
    elif cancelling:
        state = "cancelling"
    else:
        state = "pending"
    frames = chain(task) if state != "done" else []
    awaiting = ""
    if state in ("pending", "cancelling"):
        awaiting = _asyncio_call(frames) or (
            f"task {awaited[mine]}"
            if awaited[mine]
            else "a future"
            if _waiter(task) is not None
            else ""
        )
    stack = None
    if include_stacks:
        stack = [
            FrameInfo(f.f_code.co_filename, f.f_lineno or 0, qualname(f.f_code)) for f in frames
        ]
    return {
        "task_id": mine,
        "name": task.get_name(),
        "coroutine": coroutine_name(task),
        "state": state,
        "loop_id": loop_number(loop),
        "awaiting": awaiting,
        "awaiting_task_id": awaited[mine],
        "awaited_by": sorted(awaited_by.get(mine, ())),
        "stack": stack,
        "cancel_requests": cancelling,
    }


def coroutine_name(task: Task) -> str:
    """The qualified name of the task's coroutine function."""
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None)
    return name if isinstance(name, str) else type(coro).__qualname__


def is_task(thing: object) -> TypeGuard[Task]:
    return thing is not None and hasattr(thing, "get_coro") and hasattr(thing, "get_loop")


def cancel_requests(task: Task) -> int:
    cancelling = getattr(task, "cancelling", None)
    if cancelling is not None:
        return int(cancelling())
    return 1 if getattr(task, "_must_cancel", False) else 0


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


def _waiter(task: Task) -> object:
    return getattr(task, "_fut_waiter", None)


def _group_parents(task: Task) -> list[Task]:
    """The parent tasks of the TaskGroups `task` belongs to (a group adds its
    _on_task_done to each child's done callbacks)."""
    parents: list[Task] = []
    for entry in getattr(task, "_callbacks", None) or ():
        callback = entry[0] if isinstance(entry, tuple) else entry
        parent = getattr(getattr(callback, "__self__", None), "_parent_task", None)
        if is_task(parent):
            parents.append(parent)
    return parents
