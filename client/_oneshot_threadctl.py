"""One-shot operations through the threadctl a process already imported (runs inside the target).

Part of the job (see _oneshot.py, sent before this file). When the program
imported threadctl, its registry knows what a plain listing cannot (stop
flags, cooperative and protected threads, critical sections), and its stop
is the one to use: a cooperative stop is then meaningful, and a forced stop
still waits for critical sections to end.
"""

import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # in the job these are _oneshot.py's, sent before this file
    from threadctl.client._oneshot import JobError, _blank_record
    from threadctl.client._oneshot_force import _find_thread


def _has_threadctl() -> bool:
    return "threadctl._control" in sys.modules and "threadctl._snapshot" in sys.modules


def _threadctl_records(params: dict) -> list:
    snapshots = sys.modules["threadctl._snapshot"].snapshot_all(bool(params.get("stacks")))
    me = threading.get_ident()
    return [_from_snapshot(s) for s in snapshots if s.ident != me]


def _threadctl_stop(params: dict) -> dict:
    control = sys.modules["threadctl._control"]
    errors = sys.modules["threadctl.errors"]
    thread = _find_thread(params["tid"])
    try:
        # The identity of the thread just resolved: if it exits and a new
        # thread gets its ident before the stop, the stop is refused.
        identity = sys.modules["threadctl._registry"].registry.state_of(thread).identity
        result = control.stop(
            thread.ident,
            None,
            expected_identity=identity,
            reason=params["reason"],
            wait=params["wait"],
            force=params["force"] or params["grace"] > 0,
            grace=params["grace"],
            allow_main_thread=params["allow_main"],
            caller=params["caller"],
        )
    except errors.ThreadNotFound as error:
        raise JobError("not_found", str(error)) from None
    except errors.InvalidArgument as error:
        raise JobError("usage", str(error)) from None
    except errors.ThreadctlError as error:
        raise JobError("refused", str(error)) from None
    return {
        "outcome": result.outcome.value,
        "forced": result.forced,
        "already_requested": result.already_requested,
        "waited_seconds": result.waited_seconds,
        "thread": _from_snapshot(result.thread),
    }


def _from_snapshot(snapshot: object) -> dict:
    def get(name: str) -> object:
        return getattr(snapshot, name)

    force = getattr(get("force"), "value", "none")
    stack = getattr(snapshot, "stack", None)
    blocked = get("blocked_in")
    record = dict(
        _blank_record(get("ident"), None),
        native_id=get("native_id"),
        identity=get("identity"),
        name=get("name"),
        daemon=get("daemon"),
        main=get("main"),
        protected=get("protected"),
        cooperative=get("cooperative"),
        stop_state={
            "deferred": "force_deferred",
            "pending": "force_pending",
            "delivered": "force_delivered",
        }.get(force, "requested" if get("stop_requested") else "none"),
        stop_reason=get("stop_reason"),
        stop_requested_at=get("stop_requested_at"),
        in_critical_section=get("in_critical_section"),
        forced_at=get("forced_at"),
        force_delivered_at=get("force_delivered_at"),
        blocked_in=None if blocked is None else _frame_dict(blocked),
        cpu_seconds=get("cpu_seconds"),
        stack=None if stack is None else [_frame_dict(f) for f in stack.frames],
        stack_truncated=bool(stack is not None and stack.truncated),
        kernel_state=getattr(snapshot, "kernel_state", ""),
        partial=getattr(snapshot, "partial", False),
    )
    record["activity"] = getattr(getattr(snapshot, "activity", None), "value", "unknown")
    record["activity_detail"] = getattr(snapshot, "activity_detail", "")
    return record


def _frame_dict(frame: object) -> dict:
    return {"filename": frame.filename, "line": frame.line, "function": frame.function}  # type: ignore[attr-defined]
