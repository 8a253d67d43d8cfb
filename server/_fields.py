"""Domain records as the proto's fields: the one place that knows both shapes.

Dicts keyed by the field names of threadctl.proto, enums by value name,
messages as dicts: `pb.ThreadRecord(**record_fields(s))` builds the gRPC
answer (_proto_mapping), and one-shot jobs send the same dicts as JSON from
inside a process where protobuf may not even be loaded (_job_api), which the
client decodes with the same model code as a gRPC answer.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from threadctl._activity import Activity
from threadctl._control import StopResult
from threadctl._core.frames import FrameInfo
from threadctl._history import Entry
from threadctl._outcome import StopOutcome
from threadctl._registry import ForceState
from threadctl._snapshot import ThreadSnapshot
from threadctl._stop_all import StopAllResult
from threadctl._tasks.cancel import CancelResult
from threadctl._tasks.listing import Listing, LoopSnapshot, TaskSnapshot
from threadctl._version import __version__

Fields = dict[str, Any]

_ACTIVITY = {activity: f"ACTIVITY_{activity.name}" for activity in Activity}
_ACTIVITY[Activity.UNKNOWN] = "ACTIVITY_UNSPECIFIED"
_FORCE_STATE = {state: f"STOP_STATE_FORCE_{state.name}" for state in ForceState}


def record_fields(thread: ThreadSnapshot) -> Fields:
    """A ThreadRecord's fields (optional ones only when known)."""
    fields: Fields = {
        "ident": thread.ident,
        "native_id": thread.native_id,
        "identity": thread.identity,
        "name": thread.name,
        "daemon": thread.daemon,
        "main": thread.main,
        "protected": thread.protected,
        "cooperative": thread.cooperative,
        "stop_state": _stop_state(thread),
        "stop_reason": thread.stop_reason,
        "stop_requested_at": thread.stop_requested_at,
        "in_critical_section": thread.in_critical_section,
        "forced_at": thread.forced_at,
        "force_delivered_at": thread.force_delivered_at,
        "activity": _ACTIVITY[thread.activity],
        "activity_detail": thread.activity_detail,
        "kernel_state": thread.kernel_state,
        "partial": thread.partial,
        "force_waits_in": thread.force_waits_in,
    }
    if thread.blocked_in is not None:
        fields["blocked_in"] = frame_fields(thread.blocked_in)
    if thread.cpu_seconds is not None:
        fields["cpu_seconds"] = thread.cpu_seconds
    if thread.stack is not None:
        fields["stack"] = [frame_fields(f) for f in thread.stack.frames]
        fields["stack_truncated"] = thread.stack.truncated
    return fields


def frame_fields(frame: FrameInfo) -> Fields:
    return {"filename": frame.filename, "line": frame.line, "function": frame.function}


def outcome_name(outcome: StopOutcome) -> str:
    return f"STOP_OUTCOME_{outcome.name}"


def stop_fields(result: StopResult) -> Fields:
    """A StopThreadResponse's fields."""
    return {
        "outcome": outcome_name(result.outcome),
        "thread": record_fields(result.thread),
        "already_requested": result.already_requested,
        "waited_seconds": result.waited_seconds,
        "forced": result.forced,
    }


def stop_all_fields(result: StopAllResult) -> Fields:
    """A StopAllThreadsResponse's fields."""
    return {
        "threads": [
            {
                "thread": record_fields(report.thread),
                "outcome": outcome_name(report.outcome),
                "forced": report.forced,
            }
            for report in result.threads
        ],
        "all_exited": result.all_exited,
        "waited_seconds": result.waited_seconds,
    }


def loop_fields(loop: LoopSnapshot) -> Fields:
    """A LoopRecord's fields."""
    return loop._asdict()


def task_fields(task: TaskSnapshot) -> Fields:
    """A TaskRecord's fields."""
    fields = task._asdict()
    fields["state"] = f"TASK_STATE_{task.state.name}"
    fields["awaited_by"] = list(task.awaited_by)
    if task.stack is None:
        del fields["stack"]
    else:
        fields["stack"] = [frame_fields(f) for f in task.stack]
    return fields


def tasks_fields(listing: Listing) -> Fields:
    """A ListTasksResponse's fields but `process`."""
    return {
        "loops": [loop_fields(loop) for loop in listing.loops],
        "tasks": [task_fields(task) for task in listing.tasks],
    }


def cancel_fields(result: CancelResult) -> Fields:
    """A CancelTaskResponse's fields."""
    return {
        "outcome": f"CANCEL_OUTCOME_{result.outcome.name}",
        "task": task_fields(result.task),
        "waited_seconds": result.waited_seconds,
    }


def history_fields(entries: list[Entry]) -> Fields:
    """A ListHistoryResponse's fields but `process`."""
    return {
        "entries": [{name: getattr(entry, name) for name in _HISTORY_FIELDS} for entry in entries]
    }


_HISTORY_FIELDS = [name for name in Entry.__dataclass_fields__ if name != "target"]


def _stop_state(thread: ThreadSnapshot) -> str:
    if thread.force is not ForceState.NONE:
        return _FORCE_STATE[thread.force]
    return "STOP_STATE_REQUESTED" if thread.stop_requested else "STOP_STATE_NONE"


def process_fields(notes: tuple[str, ...] = ()) -> Fields:
    """A ProcessInfo's fields for this process, now."""
    return {
        "pid": os.getpid(),
        "argv": [str(arg) for arg in sys.argv],
        "python_version": sys.version.split()[0],  # as platform.python_version()
        "threadctl_version": __version__,
        "notes": list(notes),
    }
