"""The one-shot backend: each call a job inside a process that never imported
threadctl (`--attach`), answering like the gRPC server would.

A job answers with the proto's messages as JSON fields (target/), decoded
here into the very messages a gRPC call returns and from them into the same
models, so tables, `--json` and exit codes are those of the server-backed
commands. What a process without threadctl cannot compute for itself (what
a thread's innermost frame is calling: `dis` would stay loaded there) comes
back raw and is classified here, by the server's own code.
"""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import time
from pathlib import Path
from types import CodeType
from typing import Any

from google.protobuf import json_format

from threadctl import _bytecode
from threadctl._activity import Activity, classify
from threadctl._bytecode import current_call
from threadctl._core.frames import FrameInfo
from threadctl.client._backend import selector_fields
from threadctl.client._models import StopAllResult, StopResult, ThreadInfo, ThreadList
from threadctl.client._task_models import ADDRESS_IDS_NOTE, TaskList
from threadctl.client.attach import _inspect, _jobs
from threadctl.v1 import threadctl_pb2 as pb

_ACTIVITY_NAMES = {
    activity: pb.Activity.Name(number)
    for activity, number in [
        (Activity.UNKNOWN, pb.ACTIVITY_UNSPECIFIED),
        (Activity.RUNNING, pb.ACTIVITY_RUNNING),
        (Activity.SLEEPING, pb.ACTIVITY_SLEEPING),
        (Activity.WAITING, pb.ACTIVITY_WAITING),
        (Activity.IO, pb.ACTIVITY_IO),
        (Activity.BLOCKED, pb.ACTIVITY_BLOCKED),
    ]
}
ONE_SHOT_NOTE = "listed by a one-shot job injected into the process (nothing stays running there)"


class OneShot:
    """A Backend (see client/_backend.py) for process `pid`, by injection."""

    def __init__(self, pid: int, *, timeout: float) -> None:
        self.pid = pid
        self.timeout = timeout

    def list_threads(self, *, include_stacks: bool = False) -> ThreadList:
        answer = self._run({"op": "list", "stacks": include_stacks})
        response = _decode(answer, pb.ListThreadsResponse(), list(answer["result"]["threads"]))
        response.process.notes.append(ONE_SHOT_NOTE)
        return ThreadList.from_proto(response, include_stacks)

    def get_thread(
        self,
        *,
        ident: int | None = None,
        native_id: int | None = None,
        tid_or_ident: int | None = None,
        name: str | None = None,
    ) -> ThreadInfo:
        selector = selector_fields(ident, native_id, tid_or_ident, name)
        answer = self._run({"op": "get", "thread": selector})
        response = _decode(answer, pb.GetThreadResponse(), [answer["result"]["thread"]])
        return ThreadInfo.from_proto(response.thread, with_stack=True)

    def stop_thread(
        self,
        *,
        ident: int | None = None,
        native_id: int | None = None,
        tid_or_ident: int | None = None,
        name: str | None = None,
        expected_identity: str = "",
        reason: str = "",
        wait: float = 0.0,
        force: bool = False,
        grace: float = 0.0,
        allow_main_thread: bool = False,
    ) -> StopResult:
        params = {
            "op": "stop",
            "thread": selector_fields(ident, native_id, tid_or_ident, name),
            "expected_identity": expected_identity,
            "reason": reason,
            "wait": wait,
            "force": force,
            "grace": grace,
            "allow_main": allow_main_thread,
        }
        answer = self._run(params, extra_time=wait + grace)
        response = _decode(answer, pb.StopThreadResponse(), [answer["result"]["thread"]])
        return StopResult.from_proto(response)

    def stop_all_threads(
        self,
        *,
        grace: float = 5.0,
        force: bool = False,
        wait: float = 1.0,
        reason: str = "",
        include_main_thread: bool = False,
    ) -> StopAllResult:
        params = {
            "op": "stop_all",
            "grace": grace,
            "force": force,
            "wait": wait if force else 0.0,
            "reason": reason,
            "allow_main": include_main_thread,
        }
        answer = self._run(params, extra_time=grace + (wait if force else 0.0))
        records = [report["thread"] for report in answer["result"]["threads"]]
        return StopAllResult.from_proto(_decode(answer, pb.StopAllThreadsResponse(), records))

    def list_tasks(self, *, include_stacks: bool = False, thread: int = 0) -> TaskList:
        answer = self._run({"op": "tasks", "stacks": include_stacks, "loop_thread": thread})
        response = _decode(answer, pb.ListTasksResponse(), [])
        response.process.notes.append(ONE_SHOT_NOTE)
        if not response.process.threadctl_version:  # the shipped job answered, not threadctl's
            response.process.notes.append(ADDRESS_IDS_NOTE)
        return TaskList.from_proto(response, include_stacks)

    def close(self) -> None:
        pass

    def _run(self, params: dict[str, Any], extra_time: float = 0.0) -> dict[str, Any]:
        started = time.monotonic()
        target = _inspect.inspect(self.pid)
        params = dict(params, **caller("threadctl one-shot"))
        answer = _jobs.run_job(target, params, started + self.timeout + extra_time)
        answer["callees"] = _callees(target, answer.get("raw") or {})
        return answer


def caller(via: str) -> dict[str, Any]:
    """Who asks, for the target's audit records."""
    uid = os.getuid()
    sudo = os.environ.get("SUDO_UID") if uid == 0 else None
    who = f"uid={uid}" + (f" (sudo from uid {sudo})" if sudo and sudo.isdigit() else "")
    return {"caller": f"{who} pid={os.getpid()} ({via})", "caller_uid": uid}


def _decode(answer: dict[str, Any], message: Any, records: list[dict[str, Any]]) -> Any:
    """The job's result as `message`, after classifying the threads the job
    sent raw (a process without threadctl cannot)."""
    raw = answer.get("raw") or {}
    for record in records:
        found = raw.get(str(record.get("ident")))
        if found is not None and "activity" not in record:
            callee = answer["callees"].get(str(record.get("ident")), "")
            _classify(record, found, callee)
    json_format.ParseDict(answer["result"], message)
    return message


def _classify(record: dict[str, Any], raw: dict[str, Any], callee: str | None) -> None:
    frames = [FrameInfo(*frame) for frame in raw["frames"]]
    kernel_state = str(record.get("kernel_state", ""))
    if callee == "" and kernel_state == "R":
        callee = None  # not known: the kernel says it runs (between bytecodes, as it matters)
    activity, detail = classify(frames, callee, lambda: kernel_state)
    record["activity"] = _ACTIVITY_NAMES[activity]
    record["activity_detail"] = detail


def _callees(target: _inspect.Target, raw: dict[str, Any]) -> dict[str, str | None]:
    """What each thread's innermost frame calls, from the code objects the job
    marshalled: decoded here on the same CPython version, else by the
    target's own interpreter (`/proc/PID/exe -I -S`, a few ms of start-up).

    Only for a process of this user: marshal data from another user's process
    could be crafted to crash the reader, and running its executable would run
    that user's code. Unknown callees are "" (in some call).
    """
    wanted = {ident: (item.get("code"), item.get("lasti")) for ident, item in raw.items()}
    wanted = {ident: item for ident, item in wanted.items() if item[0]}
    if not wanted or target.uid != os.geteuid():
        return {}
    if target.python == sys.version_info[:2]:
        return {ident: _decode_callee(code, lasti) for ident, (code, lasti) in wanted.items()}
    script = _CALLEE_SCRIPT.format(bytecode=(Path(_bytecode.__file__).read_text()))
    try:
        done = subprocess.run(
            [f"{target.root}/proc/{target.pid}/exe", "-I", "-S", "-c", script],
            input=json.dumps(wanted),
            capture_output=True,
            text=True,
            timeout=_CALLEE_TIMEOUT,
            check=True,
        )
        found = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _decode_callee(code_hex: str, lasti: int) -> str | None:
    try:
        code = marshal.loads(bytes.fromhex(code_hex))  # noqa: S302 - see _callees
    except (ValueError, EOFError, TypeError):
        return ""
    return current_call(code, int(lasti)) if isinstance(code, CodeType) else ""


_CALLEE_TIMEOUT = 5.0
# Run by the target's own interpreter: threadctl._bytecode's source, then this.
_CALLEE_SCRIPT = """\
{bytecode}

import json, marshal, sys
wanted = json.load(sys.stdin)
out = {{}}
for ident, (code, lasti) in wanted.items():
    try:
        out[ident] = current_call(marshal.loads(bytes.fromhex(code)), int(lasti))
    except Exception:
        out[ident] = ""
json.dump(out, sys.stdout)
"""
