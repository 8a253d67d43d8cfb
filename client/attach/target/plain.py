"""One-shot operations in a process without threadctl (runs inside the target).

Threads as `threading` and the kernel know them (names, TIDs, CPU), stacks
through the core's guarded walk, and a forced stop through the core's
landing check (with the agent's native injector): the same rules as
threadctl's own forced stop, but nothing may stay running here, so a stop
that cannot land within the call's wait is not sent at all. A cooperative
stop is impossible (nothing in the process reads a stop flag).

Answers are dicts in the proto's field names (ListThreadsResponse,
GetThreadResponse, StopThreadResponse, ListTasksResponse). What only the client can compute
(what a thread's innermost frame is calling, which needs `dis`: an extension
this job must not load) travels in `raw`: each thread's walked frames with
their tags, and its innermost code object, marshalled.
"""

from __future__ import annotations

import _thread
import marshal
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Collection
    from threading import Thread
    from types import CodeType
    from typing import TypedDict

    Json = dict[str, object]  # a JSON object: an answer, or a part of one

    class Params(TypedDict, total=False):
        """A one-shot job's parameters (see client/attach/_oneshot.py); which
        of them are there depends on `op`."""

        op: str
        agent_ident: int  # added by the runner: the agent's thread
        caller: str
        caller_uid: int
        stacks: bool
        thread: dict[str, object]  # ThreadSelector fields, one of them
        loop_thread: int  # tasks: only the loop this thread runs (TID or ident), if not 0
        expected_identity: str
        reason: str
        wait: float
        force: bool
        grace: float
        allow_main: bool

    class Record(TypedDict, total=False):
        """A thread, in the proto's ThreadInfo field names (those a one-shot sets)."""

        ident: int
        native_id: int
        identity: str
        name: str
        daemon: bool
        main: bool
        partial: bool
        kernel_state: str
        cpu_seconds: float
        stack: list[Json]
        stack_truncated: bool
        blocked_in: Json | None
        stop_state: str
        stop_reason: str
        stop_requested_at: float
        forced_at: float
        force_delivered_at: float


# In a job the core's modules are siblings, which type checkers cannot see:
# they (and linters) see the core where it lives (the core is stdlib-only).
if not TYPE_CHECKING and __package__ and __package__ != "threadctl.client.attach.target":
    from . import frames, known_waits, landing, procfs, quiet, tasks, traps
    from . import futures as futures_module
else:
    from threadctl._core import (
        frames,
        known_waits,
        landing,
        procfs,
        quiet,
        tasks,
        traps,
    )
    from threadctl._core import futures as futures_module

ACTIVITY_DEPTH = 8  # frames walked to classify a thread when no stack is asked for
DELIVERY_WINDOW = 0.1  # as threadctl's server: time a busy thread gets to take it
PROBE_WAIT = 0.1  # as threadctl's server: a loop that has not turned by then is stalled
GEVENT_NOTE = (
    "gevent has monkey-patched threading in this process: greenlets are not threads, so"
    " the OS threads are listed, and forced stops are refused (one would hit whichever"
    " greenlet runs)"
)


class Refusal(Exception):
    """An answer other than OK; `code` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def run(params: Params, agent_land: landing.Injector | None) -> Json:
    try:
        return {"ok": True, **_run(params, agent_land)}
    except Refusal as refusal:
        return {"ok": False, "code": refusal.code, "error": str(refusal)}


def _run(params: Params, agent_land: landing.Injector | None) -> Json:
    op = params["op"]
    me = params["agent_ident"]
    if op == "list":
        records, raw = _records(me, params["stacks"])
        return {"result": {"process": _process(), "threads": records}, "raw": raw}
    if op == "get":
        records, raw = _records(me, True)
        record = _pick(records, params["thread"])
        key = str(record["ident"])
        return {"result": {"thread": record}, "raw": {key: raw[key]} if key in raw else {}}
    if op == "stop":
        return {"result": _stop(params, me, agent_land), "raw": {}}
    if op == "tasks":
        return {"result": _tasks(params["stacks"], params["loop_thread"]), "raw": {}}
    raise Refusal(
        "FAILED_PRECONDITION",
        f"{op} needs threadctl inside the process (nothing there reads a stop flag);"
        " `threadctl attach` it, or stop threads one by one with --force",
    )


# --- listings -----------------------------------------------------------------


def _records(me: int, stacks: bool) -> tuple[list[Record], dict[str, Json]]:
    """Thread records (proto fields) and, by ident, what the client needs to
    classify them."""
    threading = sys.modules.get("threading")
    known: dict[int, Thread] = {}
    if threading is not None and not _gevent():
        with threading._active_limbo_lock:
            known = dict(threading._active)
    tag = known_waits.tagger()
    walked = {}
    with frames.frames_guarded():
        current = sys._current_frames()
        try:
            for ident, frame in current.items():
                if ident != me:
                    stack, truncated = frames.walk(
                        frame, frames.MAX_DEPTH if stacks else ACTIVITY_DEPTH, stacks, tag
                    )
                    walked[ident] = (stack, truncated, frame.f_code, frame.f_lasti)
        finally:
            del current
    records: list[Record] = []
    raw: dict[str, Json] = {}
    for ident, thread in known.items():
        if ident != me and procfs.is_alive(thread):
            records.append(_thread_record(thread))
    if _gevent() and threading is not None:
        _claim_main_thread(records, walked, threading.main_thread())
    seen = {record["ident"] for record in records}
    records += [_partial(ident) for ident in walked if ident not in seen]
    for record in records:
        found = walked.get(record["ident"])
        if found is None:
            continue
        stack, truncated, code, lasti = found
        if stacks:
            record["stack"] = [_frame(f) for f in stack]
            record["stack_truncated"] = truncated
        raw[str(record["ident"])] = {
            "frames": [list(f) for f in stack],
            "code": _marshalled(code),
            "lasti": lasti,
        }
    return records, raw


def _thread_record(thread: Thread) -> Record:
    threading = sys.modules["threading"]
    native_id = procfs.native_id_of(thread)
    stat = procfs.read_stat(f"/proc/self/task/{native_id}/stat") if native_id else None
    record: Record = {
        "ident": thread.ident or 0,
        "native_id": native_id,
        "identity": f"oneshot:{native_id}:{stat.start_ticks if stat else 0}",
        "name": thread.name,
        "daemon": thread.daemon,
        "main": thread is threading.main_thread(),
        "stop_state": "STOP_STATE_NONE",
        "kernel_state": stat.state if stat else "",
    }
    if stat is not None:
        record["cpu_seconds"] = stat.cpu_seconds
    return record


def _partial(ident: int) -> Record:
    """A thread that runs Python code but that `threading` does not know."""
    return {"ident": ident, "stop_state": "STOP_STATE_NONE", "partial": True}


def _claim_main_thread(records: list[Record], walked: Collection[int], main: Thread) -> None:
    """Under gevent, `threading` keys the main thread by a greenlet id: put it
    back under its OS thread's ident (its TID is the process's PID)."""
    if any(record["ident"] == main.ident for record in records):
        return
    named = {record["ident"] for record in records}
    ident = _main_os_ident()
    if ident is None or ident not in walked:
        unnamed = [other for other in walked if other not in named]
        ident = unnamed[0] if len(unnamed) == 1 else None
    if ident is not None and ident not in named:
        record = _thread_record(main)
        record["ident"] = ident
        records.append(record)


def _main_os_ident() -> int | None:
    """The main OS thread's ident where gevent hides it: CPython 3.13 keeps it
    in `_thread` (gevent leaves that unpatched), before that gevent's hub
    module recorded it on import (gevent assumes the main thread imports it)."""
    get = getattr(sys.modules.get("_thread"), "_get_main_thread_ident", None)
    if get is not None:
        ident = get()
    else:
        ident = getattr(sys.modules.get("gevent.hub"), "MAIN_THREAD_IDENT", None)
    return ident if isinstance(ident, int) else None


def _pick(records: list[Record], selector: dict[str, object]) -> Record:
    """The record `selector` (ThreadSelector fields) names."""
    for key, value in selector.items():
        if key == "tid_or_ident":
            matches = [r for r in records if r.get("native_id") == value] or [
                r for r in records if r["ident"] == value
            ]
        else:
            matches = [r for r in records if r.get(key) == value]
        matches = [r for r in matches if not r.get("partial")]
        if len(matches) > 1:
            raise Refusal("FAILED_PRECONDITION", f"{len(matches)} threads match {key} {value!r}")
        if matches:
            return matches[0]
    raise Refusal("NOT_FOUND", f"no thread with {_describe(selector)} in process {os.getpid()}")


def _process() -> Json:
    return {
        "pid": os.getpid(),
        "argv": [str(a) for a in getattr(sys, "argv", [])],
        "python_version": sys.version.split()[0],
        "threadctl_version": "",
        "notes": [GEVENT_NOTE] if _gevent() else [],
    }


# --- asyncio tasks ------------------------------------------------------------


def _tasks(stacks: bool, wanted: int) -> Json:
    """A ListTasksResponse: the loops with pending tasks, and those tasks.

    Ids are the tasks' and loops' addresses (`id()`): nothing stays here to
    number them, and an address is never one of a server's ids (those count
    from 1), so an id from here given to CancelTask after an attach is
    refused, never taken for another task. Whether a loop turns is probed as
    the server does, with a callback scheduled by call_soon_threadsafe: the
    `release` of a fresh lock (a loop blocked past PROBE_WAIT runs it when it
    turns again; no code of the job's is left in it).
    """
    pending = tasks.pending_tasks()
    loops = list({id(task.get_loop()): task.get_loop() for task in pending}.values())
    stalled = _stalls(loops)
    threading = sys.modules.get("threading")
    active: dict[int, Thread] = dict(threading._active) if threading is not None else {}
    loop_records: list[Json] = []
    with frames.frames_guarded():
        for loop in loops:
            ident = tasks.running_thread(loop)
            runner = active.get(ident)
            native_id = procfs.native_id_of(runner) if runner is not None else 0
            if wanted and wanted not in (ident, native_id):
                continue
            current = tasks.current_task(loop)
            loop_records.append(
                {
                    "loop_id": id(loop),
                    "loop_class": f"{type(loop).__module__}.{type(loop).__qualname__}",
                    "running": loop.is_running(),
                    "thread_ident": ident,
                    "thread_native_id": native_id,
                    "thread_name": runner.name if runner is not None else "",
                    "stalled_seconds": stalled.get(id(loop), 0.0),
                    "current_task_id": id(current) if current is not None else 0,
                }
            )
        listed = {record["loop_id"] for record in loop_records}
        chosen = [task for task in pending if id(task.get_loop()) in listed]
        task_records = [
            {
                **record,
                "state": f"TASK_STATE_{record['state'].upper()}",
                "stack": [_frame(f) for f in record["stack"] or ()],
            }
            for record in tasks.records(chosen, id, id, stacks)
        ]
    if wanted and not loop_records:
        raise Refusal("NOT_FOUND", f"no event loop with pending tasks runs in thread {wanted}")
    return {"process": _process(), "loops": loop_records, "tasks": task_records}


def _stalls(loops: list[asyncio.AbstractEventLoop]) -> dict[int, float]:
    """By id, the running loops among `loops` that did not run a callback
    within PROBE_WAIT seconds, and how long they were waited for.

    The probe is the release of a plain lock this thread holds: a real lock
    also where gevent patched `_thread` (a greenlet lock waited on from this
    OS thread would never be woken by the loop's thread)."""
    monkey = sys.modules.get("gevent.monkey")
    allocate = monkey.get_original("_thread", "allocate_lock") if monkey else _thread.allocate_lock
    sent = []
    started = time.monotonic()
    for loop in loops:
        if loop.is_running():
            ran = allocate()
            ran.acquire()
            try:
                loop.call_soon_threadsafe(ran.release)
            except RuntimeError:  # closed meanwhile
                continue
            sent.append((loop, ran))
    stalled = {}
    for loop, ran in sent:
        if not ran.acquire(timeout=max(0.0, started + PROBE_WAIT - time.monotonic())):
            stalled[id(loop)] = time.monotonic() - started
    return stalled


# --- forced stop --------------------------------------------------------------


def _stop(params: Params, me: int, agent_land: landing.Injector | None) -> Json:
    if not params["force"] or params["grace"] > 0:
        what = "a grace period" if params["force"] else "a cooperative stop"
        raise Refusal(
            "FAILED_PRECONDITION",
            f"{what} needs threadctl inside the process (nothing there reads a stop flag);"
            " use --force, or `threadctl attach` if the program checks threadctl's flag",
        )
    if _gevent():
        raise Refusal("FAILED_PRECONDITION", GEVENT_NOTE)
    threading = sys.modules.get("threading")
    if threading is None:
        raise Refusal("NOT_FOUND", f"process {os.getpid()} runs no `threading` threads")
    records, _raw = _records(me, False)
    record = _pick(records, params["thread"])
    thread = threading._active.get(record["ident"])
    if thread is None or not thread.is_alive():
        raise Refusal("NOT_FOUND", "the thread exited before the stop could be sent")
    _check_forcible(thread, record, params)
    started = time.monotonic()
    stop = _StopClass.make(params)
    landing.set_injector(_injector(agent_land))
    try:
        return _force(thread, record, params, stop, started)
    finally:
        landing.set_injector(None)  # the agent's function must not outlive the job


def _force(
    thread: Thread, record: Record, params: Params, stop: _StopClass, started: float
) -> Json:
    wait = params["wait"]
    try:
        where = landing.observe(thread.ident or 0)
    except landing.NoLandingPlace as error:
        _audit(params, record, "refused", error=str(error))
        raise Refusal(
            "FAILED_PRECONDITION", f"thread {thread.name!r} cannot be forced now: {error}"
        ) from None
    sent = _send_until(thread, where, stop.exception, started + max(wait, DELIVERY_WINDOW))
    waits_in = where.waits_in or where.anchor_name
    del where  # it holds a frame of the thread
    if sent != landing.SENT and landing.QUEUE_UNSAFE:
        _audit(params, record, "refused", error=f"ran no line of {waits_in}")
        raise Refusal(
            "FAILED_PRECONDITION",
            f"thread {thread.name!r} ran no line of {waits_in} in time (blocked in a call?):"
            " from CPython 3.13 the thread raises a forced stop itself at a line of its own"
            " code, so a one-shot cannot leave it pending; nothing was sent. Give --wait"
            " SECONDS to keep trying, or attach fully to defer it",
        )
    if sent != landing.SENT:
        _audit(params, record, "refused", error=f"did not leave {waits_in}")
        raise Refusal(
            "FAILED_PRECONDITION",
            f"thread {thread.name!r} stayed in {waits_in} (code where a forced stop would"
            " leave a lock held, or code it called after the stop was asked for); nothing was"
            " sent. Give --wait SECONDS to keep trying, or attach fully to defer it",
        )
    forced_at = time.time()
    outcome = _settle(thread, stop, started + (wait or DELIVERY_WINDOW))
    record = _thread_record(thread) if thread.is_alive() else record
    if outcome != "STOP_OUTCOME_TASK_ENDED":  # else the request is over: as if never asked
        delivered = bool(stop.delivered)
        record.update(
            {
                "stop_state": (
                    "STOP_STATE_FORCE_DELIVERED" if delivered else "STOP_STATE_FORCE_PENDING"
                ),
                "stop_reason": params["reason"],
                "stop_requested_at": forced_at,
                "forced_at": forced_at,
                "force_delivered_at": stop.delivered[0] if delivered else 0.0,
            }
        )
    if outcome == "STOP_OUTCOME_FORCE_PENDING":
        record["blocked_in"] = _innermost(thread.ident or 0)
    _audit(params, record, outcome[len("STOP_OUTCOME_") :].lower())
    return {
        "outcome": outcome,
        "thread": record,
        "already_requested": False,
        "waited_seconds": time.monotonic() - started,
        "forced": True,
    }


def _check_forcible(thread: Thread, record: Record, params: Params) -> None:
    threading = sys.modules["threading"]
    identity = params["expected_identity"]
    if identity and identity != record["identity"]:
        raise Refusal(
            "FAILED_PRECONDITION",
            f"thread {record['ident']} is now {record['identity']!r}, not {identity!r}: the id"
            " was reused by another thread; nothing was stopped",
        )
    if isinstance(thread, threading._DummyThread):
        raise Refusal(
            "FAILED_PRECONDITION",
            f"thread {thread.name!r} was not started by `threading`; it is never forced",
        )
    if thread is threading.main_thread() and not params["allow_main"]:
        raise Refusal(
            "FAILED_PRECONDITION", "the main thread is protected; use --allow-main to stop it"
        )


def _send_until(
    thread: Thread,
    where: landing.Landing,
    exception: type[BaseException],
    deadline: float,
) -> str:
    """Send when the thread is where the stop may land, trying until `deadline`."""
    if landing.QUEUE_UNSAFE:
        return _trap_until(thread, where, exception, deadline)
    delay = 0.0005
    while True:
        sent = landing.send(thread, where, exception)
        if sent in (landing.SENT, landing.GONE) or time.monotonic() >= deadline:
            return sent
        if landing.moved_on(where):
            return landing.GONE
        time.sleep(delay)
        delay = min(0.02, delay * 1.5)


def _trap_until(
    thread: Thread,
    where: landing.Landing,
    exception: type[BaseException],
    deadline: float,
) -> str:
    """CPython 3.13+, where nothing may be queued (landing.safe_lines): the
    thread raises the stop itself at its next line of the task (traps),
    while the job waits for that until `deadline`. The trap and the tool id
    are given back before the job ends: nothing of the job stays registered."""
    lock = sys.modules["_thread"].allocate_lock()
    fired: list[bool] = []
    closed: list[bool] = []
    key = object()

    def spring() -> type[BaseException] | None:
        with lock:
            if closed:
                return None
            fired.append(True)
        return exception

    if not traps.arm(key, thread.ident or 0, where.task, spring):
        return landing.NOT_NOW  # a debugger holds both free tool ids
    try:
        delay = 0.0005
        while not fired and thread.is_alive() and time.monotonic() < deadline:
            if landing.moved_on(where):
                break
            time.sleep(delay)
            delay = min(0.02, delay * 1.5)
    finally:
        with lock:
            closed.append(True)
        traps.disarm(key)
        traps.release()
    if fired:
        return landing.SENT
    return landing.NOT_NOW if thread.is_alive() and not landing.moved_on(where) else landing.GONE


def _settle(thread: Thread, stop: _StopClass, deadline: float) -> str:
    """Wait until the thread exits, or caught the exception and goes on, or
    `deadline`; the outcome's name."""
    while True:
        if not thread.is_alive():
            return "STOP_OUTCOME_EXITED"
        if stop.delivered and landing.caught(thread.ident or 0, (stop.exception,)):
            return "STOP_OUTCOME_TASK_ENDED"
        if stop.left:
            return "STOP_OUTCOME_TASK_ENDED"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return (
                "STOP_OUTCOME_FORCE_DELIVERED" if stop.delivered else "STOP_OUTCOME_FORCE_PENDING"
            )
        thread.join(min(remaining, 0.01))


class _StopClass:
    """The exception class a one-shot forced stop raises, and what happened to it.

    It outlives the job (a pending stop fires later), so it refers to nothing
    of the job's: it marks its delivery in plain lists, is swallowed by a
    quiet excepthook that writes an audit record, and a Future stores a
    TaskStopped in its place (see the core's quiet and futures modules).
    """

    def __init__(self, exception: type[BaseException]) -> None:
        self.exception = exception
        # Our marks on our own exception class (set by make()).
        self.delivered: list[float] = exception._threadctl_delivered  # type: ignore[attr-defined]
        self.left: list[bool] = exception._threadctl_left  # type: ignore[attr-defined]

    @classmethod
    def make(cls, params: Params) -> _StopClass:
        delivered: list[float] = []
        left: list[bool] = []

        class ForcedStop(BaseException):
            """Raised in the thread by `threadctl stop --force --attach`."""

            _threadctl_delivered = delivered
            _threadctl_left = left

            def __init__(self, *args: object) -> None:
                super().__init__(*args or ("forced stop (threadctl one-shot attach)",))
                delivered.append(time.time())

        ForcedStop.__module__ = "threadctl"
        quiet.install((ForcedStop,), _thread_ended_hook(params))
        futures_module.patch((ForcedStop,), _task_stopped_class(), lambda: left.append(True))
        return cls(ForcedStop)


def _task_stopped_class() -> type[Exception]:
    """threadctl.TaskStopped as one-shot jobs make it, once per process."""
    base = sys.modules.get("concurrent.futures._base")
    found = getattr(base, "_threadctl_one_shot_task_stopped", None)
    if found is None:

        class TaskStopped(Exception):
            """A task's Future failed because threadctl stopped its thread."""

        TaskStopped.__module__ = "threadctl"
        found = TaskStopped
        if base is not None:
            base._threadctl_one_shot_task_stopped = found  # type: ignore[attr-defined]  # ours
    return found


def _thread_ended_hook(params: Params) -> quiet.Ended:
    fields = {"caller": params["caller"], "caller_uid": params["caller_uid"]}

    def ended(args: object) -> None:
        thread = getattr(args, "thread", None)
        _log(
            dict(
                fields,
                action="thread_ended",
                by="forced stop",
                ident=getattr(thread, "ident", None),
                native_id=getattr(thread, "native_id", None),
                name=getattr(thread, "name", None),
            )
        )

    return ended


def _injector(agent_land: landing.Injector | None) -> landing.Injector:
    if agent_land is not None:
        return agent_land
    import ctypes  # CPython 3.14's remote_exec path has no agent library

    send = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
        ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
    )
    return landing.python_injector(send)


def _innermost(ident: int) -> Json | None:
    with frames.frames_guarded():
        frame = sys._current_frames().get(ident)
        if frame is None:
            return None
        walked, _cut = frames.walk(frame, 1, True, lambda code: "")
        del frame
    return _frame(walked[-1]) if walked else None


# --- helpers ------------------------------------------------------------------


def _frame(frame: frames.FrameInfo) -> Json:
    return {"filename": frame.filename, "line": frame.line, "function": frame.function}


def _marshalled(code: CodeType) -> str:
    try:
        return marshal.dumps(code).hex()
    except ValueError:
        return ""


def _gevent() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("threading"))


def _describe(selector: dict[str, object]) -> str:
    key, value = next(iter(selector.items()))
    return {"tid_or_ident": "TID or ident", "native_id": "TID"}.get(key, key) + f" {value!r}"


def _audit(params: Params, record: Record, outcome: str, **extra: object) -> None:
    _log(
        {
            "action": "stop",
            "mode": "force",
            "caller": params["caller"],
            "caller_uid": params["caller_uid"],
            "ident": record.get("ident"),
            "native_id": record.get("native_id"),
            "name": record.get("name"),
            "reason": params["reason"],
            "outcome": outcome,
            **extra,
        }
    )


def _log(fields: Json) -> None:
    """One record on the process's `threadctl.audit` logger, as threadctl's
    own (only if the process uses logging: importing it here would stay)."""
    logging = sys.modules.get("logging")
    if logging is None:
        return
    message = " ".join(f"{key}={value!r}" for key, value in fields.items())
    logging.getLogger("threadctl.audit").info(
        "threadctl %s", message, extra={"threadctl_audit": fields}
    )
