"""Typed results of the asyncio task calls (ListTasks, CancelTask), built
from their protobuf messages like the thread models (_models)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from threadctl._outcome import CancelOutcome
from threadctl.client._models import Frame, ProcessInfo
from threadctl.v1 import threadctl_pb2 as pb

# A one-shot listing's note (client/attach/_oneshot.py): its ids are not a server's.
ADDRESS_IDS_NOTE = (
    "task and loop ids are their addresses in the process, for reading this listing:"
    " `threadctl attach` it to cancel a task (its server numbers tasks its own way)"
)


@dataclass(frozen=True)
class LoopInfo:
    """One asyncio event loop of the target process."""

    loop_id: int
    loop_class: str
    running: bool
    thread_ident: int  # 0 when the loop is not running
    thread_native_id: int
    thread_name: str
    # how long a callback threadctl scheduled on it has waited (0: it ran);
    # over 0: one callback or task step holds the loop
    stalled_seconds: float
    current_task_id: int  # the task it runs a step of now, 0 if none

    @classmethod
    def from_proto(cls, record: pb.LoopRecord) -> LoopInfo:
        return cls(
            loop_id=record.loop_id,
            loop_class=record.loop_class,
            running=record.running,
            thread_ident=record.thread_ident,
            thread_native_id=record.thread_native_id,
            thread_name=record.thread_name,
            stalled_seconds=record.stalled_seconds,
            current_task_id=record.current_task_id,
        )


_STATES = {
    pb.TASK_STATE_PENDING: "pending",
    pb.TASK_STATE_RUNNING: "running",
    pb.TASK_STATE_CANCELLING: "cancelling",
    pb.TASK_STATE_DONE: "done",
}


@dataclass(frozen=True)
class TaskInfo:
    """One asyncio task of the target process."""

    task_id: int
    name: str
    coroutine: str
    state: str  # "pending", "running", "cancelling", "done" or "unknown"
    loop_id: int
    awaiting: str  # "asyncio.sleep", "task 7", "a future", "" (running or scheduled)
    awaiting_task_id: int
    awaited_by: list[int]
    stack: list[Frame] | None  # innermost last; None when not asked for
    first_seen_at: float
    cancel_requests: int

    @classmethod
    def from_proto(cls, record: pb.TaskRecord, with_stack: bool) -> TaskInfo:
        return cls(
            task_id=record.task_id,
            name=record.name,
            coroutine=record.coroutine,
            state=_STATES.get(record.state, "unknown"),
            loop_id=record.loop_id,
            awaiting=record.awaiting,
            awaiting_task_id=record.awaiting_task_id,
            awaited_by=list(record.awaited_by),
            stack=[Frame(f.filename, f.line, f.function) for f in record.stack]
            if with_stack
            else None,
            first_seen_at=record.first_seen_at,
            cancel_requests=record.cancel_requests,
        )

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        if self.stack is None:
            del data["stack"]
        return data


@dataclass(frozen=True)
class TaskList:
    process: ProcessInfo
    loops: list[LoopInfo]
    tasks: list[TaskInfo]

    @classmethod
    def from_proto(cls, response: pb.ListTasksResponse, with_stacks: bool) -> TaskList:
        return cls(
            ProcessInfo.from_proto(response.process),
            [LoopInfo.from_proto(loop) for loop in response.loops],
            [TaskInfo.from_proto(task, with_stacks) for task in response.tasks],
        )

    @property
    def ids_are_addresses(self) -> bool:
        """Listed by a one-shot job: no server knows these ids."""
        return ADDRESS_IDS_NOTE in self.process.notes

    def to_json(self) -> dict[str, object]:
        return {
            "process": asdict(self.process),
            "loops": [asdict(loop) for loop in self.loops],
            "tasks": [task.to_json() for task in self.tasks],
        }


@dataclass(frozen=True)
class CancelResult:
    """What cancelling a task achieved: `outcome` is a threadctl
    CancelOutcome ("requested", "cancelled", "finished", "cancelling",
    "ignored")."""

    outcome: CancelOutcome
    task: TaskInfo
    waited_seconds: float

    @classmethod
    def from_proto(cls, response: pb.CancelTaskResponse) -> CancelResult:
        try:
            name = pb.CancelOutcome.Name(response.outcome).removeprefix("CANCEL_OUTCOME_")
            outcome = CancelOutcome.__members__.get(name, CancelOutcome.UNKNOWN)
        except ValueError:
            outcome = CancelOutcome.UNKNOWN
        return cls(outcome, TaskInfo.from_proto(response.task, False), response.waited_seconds)

    def to_json(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "waited_seconds": self.waited_seconds,
            "task": self.task.to_json(),
        }
