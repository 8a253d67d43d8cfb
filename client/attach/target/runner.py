"""The job runner: the first thing a job runs inside the target.

The job the client sends is this file's source, then
`run_job(JOB_DIR, AGENT_LAND, SOURCES, PARAMS)` with the parameters and the
sources of the other modules as literals (see client/attach/_jobs.py); the
agent runs it on its own thread with `JOB_DIR` (the private job directory)
and `AGENT_LAND` (the agent's native landing check, or None) bound.

It answers through the process's own threadctl if it has one with a job API
of this version, else with the modules shipped in the job, loaded into a
private package that is removed from sys.modules again at the end. The
result is written as result.json by a small JSON encoder of its own: the
`json` module would load an extension into the target and leave it there.
(No `from __future__ import annotations` here: it would import `__future__`
before the job can note which modules the target had.)
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Protocol

    Json = dict[str, object]  # a JSON object: the job's parameters, its answer

    class JobAPI(Protocol):
        """A process's own threadctl._job_api, and the shipped attach module."""

        def run(self, params: Json) -> Json: ...

    class OneShot(Protocol):
        """The shipped plain module."""

        def run(self, params: Json, agent_land: object) -> Json: ...


JOB_API_VERSION = 2
PACKAGE = "__threadctl_job__"


def run_job(job_dir: str, agent_land: object, sources: dict[str, str], params: "Json") -> None:
    """Answer the job described by `params`, write result.json. Never raises."""
    me = _own_ident()
    threads_before = _threading_keys()
    modules_before = set(sys.modules)
    keep_modules = True
    try:
        keep_modules = params["op"] in ("attach", "detach") or _job_api() is not None
        answer = _answer(sources, dict(params, agent_ident=me), agent_land)
    except BaseException as error:  # noqa: BLE001 - reported to the caller, never raised here
        answer = {"ok": False, "code": "INTERNAL", "error": f"{type(error).__name__}: {error}"}
    answer["agent_native_id"] = _native_id()
    _forget_own_thread_entries(me, threads_before)
    for name in set(sys.modules) - modules_before:
        # The job's own package always goes. So does whatever else a one-shot
        # job imported (`__future__`, for its sources' annotations); attach is
        # meant to stay, and a process's own threadctl keeps what it loaded.
        if name.split(".")[0] == PACKAGE or not keep_modules:
            sys.modules.pop(name, None)
    try:  # noqa: SIM105 - contextlib would be one more module imported into the target
        _write_result(job_dir, encode(answer).encode())
    except OSError:
        pass  # the caller gave up and removed the directory


def _answer(sources: dict[str, str], params: "Json", agent_land: object) -> "Json":
    opted_out = os.environ.get("PYTHON_DISABLE_REMOTE_DEBUG") or "disable_remote_debug" in getattr(
        sys, "_xoptions", {}
    )
    if opted_out:
        return _refused("the process opted out of remote debugging; nothing was done")
    op = params["op"]
    if op not in ("attach", "detach"):
        api = _job_api()
        if api is not None:
            return api.run(params)
    modules = _load(sources)
    if op in ("attach", "detach"):
        attach: JobAPI = modules["attach"]
        return attach.run(params)
    plain: OneShot = modules["plain"]
    return plain.run(params, agent_land)


def _job_api() -> "JobAPI | None":
    """The job API of the threadctl this process imported itself, if any."""
    if "threadctl" not in sys.modules:
        return None
    try:
        __import__("threadctl._job_api")
    except ImportError:
        return None  # a threadctl from before the job API: answer without it
    api = sys.modules["threadctl._job_api"]
    return api if getattr(api, "VERSION", None) == JOB_API_VERSION else None


def _load(sources: dict[str, str]) -> "dict[str, ModuleType]":
    """The shipped modules, as submodules of the private package."""
    module_type = type(sys)
    package = module_type(PACKAGE)
    package.__path__ = []
    package.__package__ = PACKAGE
    sys.modules[PACKAGE] = package
    modules = {}
    for name, source in sources.items():  # in load order: each one's imports come first
        module = module_type(f"{PACKAGE}.{name}")
        module.__package__ = PACKAGE
        module.__file__ = f"<threadctl job: {name}>"
        sys.modules[module.__name__] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
        setattr(package, name, module)
        modules[name] = module
    return modules


def _refused(message: str) -> "Json":
    return {"ok": False, "code": "FAILED_PRECONDITION", "error": message}


def _own_ident() -> int:
    """This thread's ident, also where gevent patched `_thread.get_ident` to
    return a greenlet's."""
    import _thread

    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return int(monkey.get_original("_thread", "get_ident")())
    return _thread.get_ident()


def _native_id() -> int:
    import _thread

    return _thread.get_native_id()


def _threading_keys() -> set[int]:
    threading = sys.modules.get("threading")
    return set(threading._active) if threading is not None else set()


def _forget_own_thread_entries(me: int, before: set[int]) -> None:
    """Drop the dummy `threading` entries this thread gained (logging and
    current_thread() create one, under gevent keyed by a greenlet id);
    otherwise they outlive the thread."""
    threading = sys.modules.get("threading")
    if threading is None:
        return
    for ident in set(threading._active) - before:
        entry = threading._active.get(ident)
        if isinstance(entry, threading._DummyThread) and (
            ident == me or getattr(entry, "_ident", None) in (me, None)
        ):
            threading._active.pop(ident, None)


def encode(value: object) -> str:
    """JSON of dicts, lists, strings, numbers, booleans and None."""
    if isinstance(value, str):
        return (
            '"' + "".join(_ESCAPES.get(c, c) if c < " " or c in '"\\' else c for c in value) + '"'
        )
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value) if value == value and abs(value) != float("inf") else "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{encode(str(k))}: {encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(encode(item) for item in value) + "]"
    return encode(str(value))


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES.update({chr(i): f"\\u{i:04x}" for i in range(32) if chr(i) not in _ESCAPES})


def _write_result(job_dir: str, data: bytes) -> None:
    tmp = job_dir + "/result.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.rename(tmp, job_dir + "/result.json")
