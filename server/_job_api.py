"""What one-shot and attach jobs call inside a process that imported threadctl.

A job (client/attach/target) running in a process whose own threadctl is of
this VERSION asks it, instead of working around it: the registry knows
what a plain listing cannot (stop flags, cooperative and protected threads,
critical sections), a cooperative stop is meaningful, and a forced stop
takes the same path as the RPC. Answers are the RPC's, as fields
(_fields), since protobuf may not be loaded here; errors carry the status
the RPC would have answered. Bump VERSION when the params or the answers
change shape.
"""

from __future__ import annotations

import sys
from typing import Any

from threadctl import _control, _fields
from threadctl._selector import Selector
from threadctl._snapshot import snapshot_all
from threadctl._stop_all import stop_all
from threadctl._tasks.listing import list_tasks
from threadctl.errors import ThreadctlError, status_of

VERSION = 2


def run(params: dict[str, Any]) -> dict[str, Any]:
    """{"ok": True, "result": fields} or {"ok": False, "code": status, "error": text}."""
    try:
        return {"ok": True, "result": _OPS[params["op"]](params)}
    except ThreadctlError as error:
        return {"ok": False, "code": status_of(error), "error": str(error)}


def _list(params: dict[str, Any]) -> dict[str, Any]:
    records = [_fields.record_fields(s) for s in snapshot_all(include_stacks=params["stacks"])]
    me = params.get("agent_ident")
    return {
        "process": _fields.process_fields(),
        "threads": [r for r in records if r["ident"] != me],
    }


def _get(params: dict[str, Any]) -> dict[str, Any]:
    return {"thread": _fields.record_fields(_control.get_thread_by(Selector(**params["thread"])))}


def _stop(params: dict[str, Any]) -> dict[str, Any]:
    result = _control.stop_thread(
        Selector(**params["thread"]),
        expected_identity=params["expected_identity"],
        reason=params["reason"],
        wait=params["wait"],
        force=params["force"],
        grace=params["grace"],
        allow_main_thread=params["allow_main"],
        caller=params["caller"],
    )
    return _fields.stop_fields(result)


def _stop_all(params: dict[str, Any]) -> dict[str, Any]:
    result = stop_all(
        grace=params["grace"],
        force=params["force"],
        wait=params["wait"],
        reason=params["reason"],
        include_main_thread=params["allow_main"],
        caller=params["caller"],
    )
    return _fields.stop_all_fields(result)


def _attach(params: dict[str, Any]) -> dict[str, Any]:
    from threadctl._rpc import _attach_target  # only now: it imports grpc

    return _attach_target.attach(caller=params["caller"], caller_uid=params["caller_uid"])


def _detach(params: dict[str, Any]) -> dict[str, Any]:
    if (
        "threadctl._rpc._attach_target" not in sys.modules
        and "threadctl._rpc._install" not in sys.modules
    ):
        return {"outcome": "not_attached", "address": ""}
    from threadctl._rpc import _attach_target

    return _attach_target.detach(caller=params["caller"], caller_uid=params["caller_uid"])


def _tasks(params: dict[str, Any]) -> dict[str, Any]:
    listing = list_tasks(params["stacks"], params["loop_thread"])
    return {"process": _fields.process_fields(), **_fields.tasks_fields(listing)}


_OPS = {
    "list": _list,
    "tasks": _tasks,
    "get": _get,
    "stop": _stop,
    "stop_all": _stop_all,
    "attach": _attach,
    "detach": _detach,
}
