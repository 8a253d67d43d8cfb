"""The job runner and the one-shot operations that run *inside* the target process.

The client does not import this module to use it: it sends its source,
followed by _oneshot_force.py and _oneshot_threadctl.py (and _attach_job.py
for attach/detach), as one job (see _attach.py), and the agent thread
executes that in a fresh namespace; names the files share are declared for
linters under TYPE_CHECKING only. So this code must run in any CPython 3.10+
with nothing but the standard library, do nothing when merely executed
except define names, and never raise: every outcome, errors included,
becomes `result.json` in the private job directory.

One operation runs: list or show threads (native TIDs, optional stacks), or
stop one. When the process itself imported threadctl, its registry and stop
are used (_oneshot_threadctl.py); otherwise listings come from `threading`
and the kernel, and only a forced stop is possible (_oneshot_force.py).

Hazards: this runs on a thread the process never started, while its own
threads run. It touches other threads' frames only once, GC paused (see
threadctl._stacks for why), and it removes the `threading` entry its own
thread may have gained, so nothing of the job is left running or listed.
"""

import contextlib
import json
import os
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # in the job these come from the files sent after this one
    from threadctl.client._oneshot_force import _plain_force
    from threadctl.client._oneshot_threadctl import (
        _has_threadctl,
        _threadctl_records,
        _threadctl_stop,
    )

MAX_DEPTH = 128
ACTIVITY_DEPTH = 8  # innermost frames kept to classify activity without --stacks
DELIVERY_WINDOW = 0.1  # as threadctl's server: time a busy thread gets to take it


class JobError(Exception):
    """A refusal or failure to report; `kind` tells the client which exit code."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def run_job(job_dir: str) -> None:
    """Run the job described by params.json and write result.json. Never raises."""
    had_entry = threading.get_ident() in threading._active  # type: ignore[attr-defined]
    try:
        params = json.loads(_read(job_dir + "/params.json"))
        _refuse_if_opted_out()
        answer = {"ok": True, "result": globals()["op_" + params["op"]](params)}
    except BaseException as error:  # noqa: BLE001 - reported to the caller, never raised here
        kind = getattr(error, "kind", None) if isinstance(error, Exception) else None
        if isinstance(kind, str):  # JobError, or the attach job's AttachRefused
            answer = {"ok": False, "kind": kind, "error": str(error)}
        else:
            text = f"{type(error).__name__}: {error}"
            answer = {"ok": False, "kind": "internal", "error": text}
    answer["agent_native_id"] = threading.get_native_id()
    _forget_own_thread_entry(had_entry)
    with contextlib.suppress(OSError):  # the caller gave up and removed the directory
        _write_result(job_dir, answer)


def op_list(params: dict) -> dict:
    records = _threadctl_records(params) if _has_threadctl() else _plain_records(params)
    return {"process": _process_info(), "threads": records}


def op_show(params: dict) -> dict:
    wanted = dict(params, stacks=True)
    records = _threadctl_records(wanted) if _has_threadctl() else _plain_records(wanted)
    tid = params["tid"]
    for key in ("native_id", "ident"):
        for record in records:
            if record[key] == tid and not record.get("partial"):
                return {"process": _process_info(), "thread": record}
    raise JobError("not_found", f"no thread with TID or ident {tid} in process {os.getpid()}")


def op_stop(params: dict) -> dict:
    if _has_threadctl():
        return _threadctl_stop(params)
    if not params["force"] or params["grace"] > 0:
        what = "a grace period" if params["force"] else "a cooperative stop"
        raise JobError(
            "refused",
            f"{what} needs threadctl inside the process (nothing there reads a stop flag);"
            " use --force, or `threadctl attach` if the program checks threadctl's flag",
        )
    return _plain_force(params)


# --- threads seen through the standard library --------------------------------


def _plain_records(params: dict) -> list:
    me = threading.get_ident()
    stacks = _capture_stacks(MAX_DEPTH if params.get("stacks") else ACTIVITY_DEPTH)
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        known = dict(threading._active)  # type: ignore[attr-defined]
    records = []
    for ident, thread in known.items():
        if ident == me or not _alive(thread):
            continue
        records.append(_plain_record(thread, stacks.get(ident)))
    for ident, stack in stacks.items():
        if ident not in known and ident != me:
            records.append(dict(_blank_record(ident, stack), partial=True))
    return records


def _plain_record(thread: threading.Thread, stack: dict | None) -> dict:
    native_id = _native_id(thread)
    cpu, state, started = _task_stat(native_id)
    return dict(
        _blank_record(thread.ident or 0, stack),
        native_id=native_id,
        identity=f"oneshot:{native_id}:{started}",
        name=thread.name,
        daemon=thread.daemon,
        main=thread is threading.main_thread(),
        cpu_seconds=cpu,
        kernel_state=state,
    )


def _blank_record(ident: int, stack: dict | None) -> dict:
    stack = stack or {"frames": [], "truncated": False, "callee": None}
    return {
        "ident": ident,
        "native_id": 0,
        "identity": "",
        "name": "",
        "daemon": False,
        "main": False,
        "protected": False,
        "cooperative": False,
        "stop_state": "none",
        "stop_reason": "",
        "stop_requested_at": 0.0,
        "in_critical_section": False,
        "forced_at": 0.0,
        "force_delivered_at": 0.0,
        "blocked_in": None,
        "cpu_seconds": None,
        "stack": stack["frames"],
        "stack_truncated": stack["truncated"],
        "callee": stack["callee"],
        "kernel_state": "",
        "partial": False,
    }


# --- helpers ---------------------------------------------------------------------


def _capture_stacks(depth: int, idents: list | None = None) -> dict:
    """Plain-data stacks (innermost last) of threads running Python code, with
    the GC paused and frame references dropped before it runs again (see
    threadctl._stacks: on 3.11 concurrent captures without that locked up)."""
    import gc

    callee_of = _callee_finder()
    known_as = _frame_tagger()
    lock = getattr(sys.modules.get("threadctl._core.frames"), "_capture_lock", None)
    if lock is not None:
        lock.acquire()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        frames = sys._current_frames()
        try:
            return {
                ident: _walk(frame, depth, callee_of, known_as)
                for ident, frame in frames.items()
                if idents is None or ident in idents
            }
        finally:
            del frames
    finally:
        if gc_was_enabled:
            gc.enable()
        if lock is not None:
            lock.release()


def _walk(frame: object, depth: int, callee_of: object, known_as: object) -> dict:
    try:
        callee = callee_of(frame.f_code, frame.f_lasti)  # type: ignore[attr-defined,operator]
    except Exception:  # noqa: BLE001 - a best-effort detail
        callee = None
    out = []
    while frame is not None and len(out) < depth:
        code = frame.f_code  # type: ignore[attr-defined]
        name = getattr(code, "co_qualname", code.co_name)
        out.append(
            {
                "filename": code.co_filename,
                "line": frame.f_lineno or 0,  # type: ignore[attr-defined]
                "function": name,
                "known_as": known_as(code),  # type: ignore[operator]
            }
        )
        frame = frame.f_back  # type: ignore[attr-defined]
    out.reverse()
    return {"frames": out, "truncated": frame is not None, "callee": callee}


def _callee_finder() -> object:
    """threadctl._bytecode.current_call, sent along as source (BYTECODE_SOURCE)."""
    source = globals().get("BYTECODE_SOURCE")
    if not source:
        return lambda code, lasti: None
    namespace: dict = {"__name__": "__threadctl_bytecode__"}
    exec(compile(source, "threadctl/_bytecode.py", "exec"), namespace)  # noqa: S102
    return namespace["current_call"]


def _frame_tagger() -> object:
    """threadctl._core.known_waits.tagger() for this process's own modules (the
    client cannot see the target's code objects), sent along as source
    (KNOWN_WAITS_SOURCE). Best effort: without it no frame is tagged."""
    source = globals().get("KNOWN_WAITS_SOURCE")
    try:
        namespace: dict = {"__name__": "__threadctl_known_waits__"}
        exec(compile(source, "threadctl/_known_waits.py", "exec"), namespace)  # noqa: S102
        return namespace["tagger"]()
    except Exception:  # noqa: BLE001 - a best-effort detail
        return lambda code: ""


def _task_stat(native_id: int) -> tuple:
    """(CPU seconds, state letter, start time in ticks) of one thread, from /proc."""
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # from field 3, the state
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks, fields[0].decode(), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None, "", 0


def _native_id(thread: threading.Thread) -> int:
    """As threadctl._core.procfs.native_id_of: after fork() the child's main thread
    keeps the parent's TID in `threading`; its real TID is the child's PID."""
    native_id = thread.native_id or 0
    if (
        native_id
        and native_id != os.getpid()
        and thread is threading.main_thread()
        and not os.path.exists(f"/proc/self/task/{native_id}")
    ):
        return os.getpid()
    return native_id


def _alive(thread: threading.Thread) -> bool:
    if isinstance(thread, threading._DummyThread):  # type: ignore[attr-defined]
        return os.path.exists(f"/proc/self/task/{_native_id(thread)}")
    return thread.is_alive()


def _process_info() -> dict:
    version = getattr(sys.modules.get("threadctl._version"), "__version__", "")
    return {
        "pid": os.getpid(),
        "argv": [str(a) for a in getattr(sys, "argv", [])],
        "python_version": sys.version.split()[0],
        "threadctl_version": version,
    }


def _refuse_if_opted_out() -> None:
    if os.environ.get("PYTHON_DISABLE_REMOTE_DEBUG") or "disable_remote_debug" in getattr(
        sys, "_xoptions", {}
    ):
        raise JobError("opted_out", "the process opted out of remote debugging; nothing was done")


def _audit(params: dict, **fields: object) -> None:
    """One record on the process's `threadctl.audit` logger, as threadctl's own."""
    import logging

    fields = dict(fields, caller=params["caller"], caller_uid=params["caller_uid"])
    message = " ".join(f"{key}={value!r}" for key, value in fields.items())
    logging.getLogger("threadctl.audit").info(
        "threadctl %s", message, extra={"threadctl_audit": fields}
    )


def _forget_own_thread_entry(had_entry: bool) -> None:
    """Drop the dummy `threading` entry this thread gained (logging and
    current_thread() create one); otherwise it outlives the thread."""
    if had_entry:
        return
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        entry = threading._active.get(threading.get_ident())  # type: ignore[attr-defined]
        if isinstance(entry, threading._DummyThread):  # type: ignore[attr-defined]
            del threading._active[threading.get_ident()]  # type: ignore[attr-defined]


def _read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        return f.read().decode()


def _write_result(job_dir: str, answer: dict) -> None:
    data = json.dumps(answer).encode()
    tmp = job_dir + "/result.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.rename(tmp, job_dir + "/result.json")
