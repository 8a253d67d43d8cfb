"""Domain records to protobuf messages: the one place that knows both shapes."""

from __future__ import annotations

from threadctl import _control
from threadctl._activity import Activity
from threadctl._core.frames import FrameInfo
from threadctl._registry import ForceState
from threadctl._snapshot import ThreadSnapshot
from threadctl.v1 import threadctl_pb2 as pb

OUTCOME = {
    _control.StopOutcome.REQUESTED: pb.STOP_OUTCOME_REQUESTED,
    _control.StopOutcome.EXITED: pb.STOP_OUTCOME_EXITED,
    _control.StopOutcome.STILL_RUNNING: pb.STOP_OUTCOME_STILL_RUNNING,
    _control.StopOutcome.FORCE_PENDING: pb.STOP_OUTCOME_FORCE_PENDING,
    _control.StopOutcome.FORCE_DEFERRED: pb.STOP_OUTCOME_FORCE_DEFERRED,
    _control.StopOutcome.FORCE_DELIVERED: pb.STOP_OUTCOME_FORCE_DELIVERED,
    _control.StopOutcome.TASK_ENDED: pb.STOP_OUTCOME_TASK_ENDED,
    _control.StopOutcome.MOVED_ON: pb.STOP_OUTCOME_MOVED_ON,
}
_ACTIVITY = {
    Activity.UNKNOWN: pb.ACTIVITY_UNSPECIFIED,
    Activity.RUNNING: pb.ACTIVITY_RUNNING,
    Activity.SLEEPING: pb.ACTIVITY_SLEEPING,
    Activity.WAITING: pb.ACTIVITY_WAITING,
    Activity.IO: pb.ACTIVITY_IO,
    Activity.BLOCKED: pb.ACTIVITY_BLOCKED,
}
_FORCE_STATE = {
    ForceState.DEFERRED: pb.STOP_STATE_FORCE_DEFERRED,
    ForceState.PENDING: pb.STOP_STATE_FORCE_PENDING,
    ForceState.DELIVERED: pb.STOP_STATE_FORCE_DELIVERED,
}


def to_proto(thread: ThreadSnapshot) -> pb.ThreadRecord:
    """The protobuf record of a snapshot."""
    record = pb.ThreadRecord(
        ident=thread.ident,
        native_id=thread.native_id,
        identity=thread.identity,
        name=thread.name,
        daemon=thread.daemon,
        main=thread.main,
        protected=thread.protected,
        cooperative=thread.cooperative,
        stop_state=_stop_state(thread),
        stop_reason=thread.stop_reason,
        stop_requested_at=thread.stop_requested_at,
        in_critical_section=thread.in_critical_section,
        forced_at=thread.forced_at,
        force_delivered_at=thread.force_delivered_at,
        activity=_ACTIVITY[thread.activity],
        activity_detail=thread.activity_detail,
        kernel_state=thread.kernel_state,
        partial=thread.partial,
        force_waits_in=thread.force_waits_in,
    )
    if thread.blocked_in is not None:
        record.blocked_in.CopyFrom(_frame(thread.blocked_in))
    if thread.cpu_seconds is not None:
        record.cpu_seconds = thread.cpu_seconds
    if thread.stack is not None:
        record.stack.extend(_frame(f) for f in thread.stack.frames)
        record.stack_truncated = thread.stack.truncated
    return record


def _frame(frame: FrameInfo) -> pb.Frame:
    return pb.Frame(filename=frame.filename, line=frame.line, function=frame.function)


def _stop_state(thread: ThreadSnapshot) -> pb.StopState.ValueType:
    if thread.force is not ForceState.NONE:
        return _FORCE_STATE[thread.force]
    return pb.STOP_STATE_REQUESTED if thread.stop_requested else pb.STOP_STATE_NONE
