"""Typed results of the client: plain dataclasses built from protobuf messages.

One source for both the table and the JSON renderings; `to_json()` gives the
stable machine-readable shape that `threadctl --json` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

from threadctl._outcome import StopOutcome
from threadctl.v1 import threadctl_pb2 as pb

_STOP_STATES = {
    pb.STOP_STATE_UNSPECIFIED: "unknown",
    pb.STOP_STATE_NONE: "none",
    pb.STOP_STATE_REQUESTED: "requested",
    pb.STOP_STATE_FORCE_DEFERRED: "force_deferred",
    pb.STOP_STATE_FORCE_PENDING: "force_pending",
    pb.STOP_STATE_FORCE_DELIVERED: "force_delivered",
}
_ACTIVITIES = {
    pb.ACTIVITY_UNSPECIFIED: "unknown",
    pb.ACTIVITY_RUNNING: "running",
    pb.ACTIVITY_SLEEPING: "sleeping",
    pb.ACTIVITY_WAITING: "waiting",
    pb.ACTIVITY_IO: "io",
    pb.ACTIVITY_BLOCKED: "blocked",
}


def _outcome(value: int) -> StopOutcome:
    """The StopOutcome of a proto STOP_OUTCOME_* value (UNKNOWN for one this
    client does not know, or UNSPECIFIED)."""
    try:
        name = pb.StopOutcome.Name(value).removeprefix("STOP_OUTCOME_")
    except ValueError:
        return StopOutcome.UNKNOWN
    return StopOutcome.__members__.get(name, StopOutcome.UNKNOWN)


@dataclass(frozen=True)
class Frame:
    filename: str
    line: int  # 0 when unknown
    function: str


@dataclass(frozen=True)
class ThreadInfo:
    """One thread of the target process, as the server reported it."""

    ident: int
    native_id: int
    identity: str
    name: str
    daemon: bool
    main: bool
    protected: bool
    cooperative: bool
    # "none", "requested", "force_deferred", "force_pending", "force_delivered"
    stop_state: str
    stop_reason: str
    stop_requested_at: float
    in_critical_section: bool
    forced_at: float
    force_delivered_at: float
    blocked_in: Frame | None  # where it is blocked while a forced stop is pending
    cpu_seconds: float | None
    stack: list[Frame] | None  # None when not asked for
    stack_truncated: bool
    # "running", "sleeping", "waiting", "io", "blocked" or "unknown", and on what
    activity: str = "unknown"
    activity_detail: str = ""
    kernel_state: str = ""
    partial: bool = False  # unknown to `threading`: no name, TID or identity
    cpu_share: float | None = None  # share of a core since the previous watch sample
    force_waits_in: str = ""  # what a deferred forced stop waits for the thread to leave

    @classmethod
    def from_proto(cls, record: pb.ThreadRecord, with_stack: bool) -> ThreadInfo:
        return cls(
            ident=record.ident,
            native_id=record.native_id,
            identity=record.identity,
            name=record.name,
            daemon=record.daemon,
            main=record.main,
            protected=record.protected,
            cooperative=record.cooperative,
            stop_state=_STOP_STATES.get(record.stop_state, "unknown"),
            stop_reason=record.stop_reason,
            stop_requested_at=record.stop_requested_at,
            in_critical_section=record.in_critical_section,
            forced_at=record.forced_at,
            force_delivered_at=record.force_delivered_at,
            blocked_in=_frame(record.blocked_in) if record.HasField("blocked_in") else None,
            cpu_seconds=record.cpu_seconds if record.HasField("cpu_seconds") else None,
            stack=[_frame(f) for f in record.stack] if with_stack else None,
            stack_truncated=record.stack_truncated,
            activity=_ACTIVITIES.get(record.activity, "unknown"),
            activity_detail=record.activity_detail,
            kernel_state=record.kernel_state,
            partial=record.partial,
            cpu_share=record.cpu_share if record.HasField("cpu_share") else None,
            force_waits_in=record.force_waits_in,
        )

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        if self.stack is None:
            del data["stack"], data["stack_truncated"]
        if self.cpu_share is None:
            del data["cpu_share"]
        return data


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    argv: list[str]
    python_version: str
    threadctl_version: str
    notes: list[str] = field(default_factory=list)  # what an operator should know first

    @classmethod
    def from_proto(cls, process: pb.ProcessInfo) -> ProcessInfo:
        return cls(
            process.pid,
            list(process.argv),
            process.python_version,
            process.threadctl_version,
            list(process.notes),
        )


@dataclass(frozen=True)
class ThreadList:
    process: ProcessInfo
    threads: list[ThreadInfo]

    @classmethod
    def from_proto(cls, response: pb.ListThreadsResponse, with_stacks: bool) -> ThreadList:
        return cls(
            ProcessInfo.from_proto(response.process),
            [ThreadInfo.from_proto(record, with_stacks) for record in response.threads],
        )

    def to_json(self) -> dict[str, object]:
        return {"process": asdict(self.process), "threads": [t.to_json() for t in self.threads]}


def _frame(frame: pb.Frame) -> Frame:
    return Frame(frame.filename, frame.line, frame.function)


@dataclass(frozen=True)
class StopResult:
    """What a stop achieved.

    `outcome` is a threadctl.StopOutcome, as threadctl.stop() answers (a
    str enum: it equals "requested", "exited", "still_running",
    "force_pending", "force_deferred", "force_delivered", "task_ended"
    (raised and caught: the thread goes on, e.g. a pool worker) or "moved_on"
    (its task finished before the stop could land)); `forced` says whether
    this call raised (or queued, or deferred) the stop exception.
    """

    outcome: StopOutcome
    thread: ThreadInfo
    already_requested: bool
    waited_seconds: float
    forced: bool

    @classmethod
    def from_proto(cls, response: pb.StopThreadResponse) -> StopResult:
        return cls(
            outcome=_outcome(response.outcome),
            thread=ThreadInfo.from_proto(response.thread, with_stack=False),
            already_requested=response.already_requested,
            waited_seconds=response.waited_seconds,
            forced=response.forced,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "already_requested": self.already_requested,
            "waited_seconds": self.waited_seconds,
            "forced": self.forced,
            "thread": self.thread.to_json(),
        }


class ThreadReport(NamedTuple):
    """What a stop of every thread did to one thread (a tuple too:
    `for thread, outcome, forced in result.threads`)."""

    thread: ThreadInfo
    outcome: StopOutcome
    forced: bool


@dataclass(frozen=True)
class StopAllResult:
    """What stop --all did: a report per thread acted on, and whether every
    thread exited."""

    threads: list[ThreadReport]
    all_exited: bool
    waited_seconds: float

    @classmethod
    def from_proto(cls, response: pb.StopAllThreadsResponse) -> StopAllResult:
        return cls(
            threads=[
                ThreadReport(ThreadInfo.from_proto(r.thread, False), _outcome(r.outcome), r.forced)
                for r in response.threads
            ],
            all_exited=response.all_exited,
            waited_seconds=response.waited_seconds,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "all_exited": self.all_exited,
            "waited_seconds": self.waited_seconds,
            "threads": [
                {"outcome": outcome, "forced": forced, "thread": thread.to_json()}
                for thread, outcome, forced in self.threads
            ],
        }


@dataclass(frozen=True)
class WatchSample:
    """One message of a watch: every thread (with cpu_share from the second
    sample on), and what changed since the previous sample."""

    process: ProcessInfo
    threads: list[ThreadInfo]
    sample_time: float
    interval_seconds: float
    started: list[str]  # identities
    exited: list[ThreadInfo]

    @classmethod
    def from_proto(cls, message: pb.WatchThreadsResponse, with_stack: bool) -> WatchSample:
        return cls(
            process=ProcessInfo.from_proto(message.process),
            threads=[ThreadInfo.from_proto(r, with_stack) for r in message.threads],
            sample_time=message.sample_time,
            interval_seconds=message.interval_seconds,
            started=list(message.started),
            exited=[ThreadInfo.from_proto(r, False) for r in message.exited],
        )

    def to_json(self) -> dict[str, object]:
        return {
            "process": asdict(self.process),
            "sample_time": self.sample_time,
            "interval_seconds": self.interval_seconds,
            "started": self.started,
            "exited": [t.to_json() for t in self.exited],
            "threads": [t.to_json() for t in self.threads],
        }
