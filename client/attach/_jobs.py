"""Run one job inside a process that never imported threadctl, within a deadline.

The steps: check the target (_inspect), write the job (target/runner.py, with
the core's and target/'s sources and the parameters as literals) into a fresh
private directory, get the agent to run it (_inject), wait for its result,
wait for the agent's thread to end, unload the agent, clean up.

- The directory is created 0700 and every file in it 0600; when root attaches
  to another user's process they are handed to that user (chown), so only
  that user and root can enter. Its path is all the agent is told (the agent
  library is a copy inside it), and results come back as result.json in it,
  so only the caller (and the process's own user) can read them. It is
  removed afterwards, whatever happened.
- The deadline covers everything. If it passes before the agent claimed the
  job (renamed job.py), removing job.py cancels it: the agent, once it gets
  the GIL, finds nothing and ends. If the job was claimed, its outcome is
  unknown and the caller is told so. Either way the process keeps running.
- A process that exits meanwhile is noticed at once (its start time tells it
  from a new process with the same PID).
- The result file is opened without following links and without blocking
  (the target's user can put a FIFO there, when root attaches), and only a
  regular file of the target's user or root is read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

import threadctl._core
from threadctl import _native_library
from threadctl.client._errors import error_for_status
from threadctl.client.attach import _inject
from threadctl.client.attach._errors import AttachFailed, NotAttachable, TargetExited
from threadctl.client.attach._inspect import Target, still_running, task_exists

AGENT_FILE = "threadctl-agent.so"
logger = logging.getLogger("threadctl.client")
# How often to look for the result and for the agent's thread to end: the
# caller waits for both, and a look is two system calls.
_POLL = 0.001
# How long a claimed job may still take to answer after the deadline.
_CLAIMED_GRACE = 1.0
# How long to wait for the agent thread to end after it answered.
_AGENT_EXIT_WAIT = 1.0
_MAX_RESULT_BYTES = 64 * 1024 * 1024
_TARGET = Path(__file__).parent / "target"
_CORE = Path(threadctl._core.__file__).parent
# What each kind of job ships (besides target/runner.py), in load order.
_CORE_MODULES = (
    "frames",
    "tasks",
    "known_waits",
    "procfs",
    "source",
    "traps",
    "landing",
    "futures",
    "quiet",
)
_SHIPPED = {"plain": (*_CORE_MODULES, "plain"), "attach": ("attach",)}


def run_job(target: Target, params: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Run the job `params` describe (see target/runner.py) inside `target`.

    Returns:
        The job's answer: {"ok": True, "result": ..., "raw": ...}.

    Raises:
        AttachFailed (TargetExited, deadline, injection), PtraceNotPermitted,
        and the error the job answered (Refused, ThreadNotFound, ...).
    """
    _inject.check_available(target)
    agent = None if _inject.uses_remote_exec(target) else agent_library()
    injection = None
    with _JobDir(target, needs_exec=agent is not None) as job:
        job.write("job.py", job_source(params).encode())
        if agent is not None:
            job.write(AGENT_FILE, agent.read_bytes())
            injection = _inject.inject_library(target, job.target_path(AGENT_FILE), deadline)
        else:
            boot = _inject.REMOTE_BOOTSTRAP.format(job_dir=job.target_path(""))
            job.write("remote.py", _inject.REMOTE_SCRIPT.format(source=boot).encode())
            _inject.remote_exec(target, job.target_path("remote.py"))
        try:
            answer = job.wait_result(deadline)
        except BaseException:
            if injection is not None:
                injection.abandon()
            raise
    _unload(target, injection, answer.get("agent_native_id"))
    if answer.get("ok"):
        return answer
    code, message = str(answer.get("code", "INTERNAL")), str(answer.get("error", "?"))
    if code == "ATTACH_FAILED":
        raise AttachFailed(message)
    if code == "INTERNAL":
        raise AttachFailed(f"the job failed inside process {target.pid}: {message}")
    raise error_for_status(code, message)


def job_source(params: dict[str, Any]) -> str:
    """The job: the runner, then its call with the shipped sources and `params`."""
    shipped = _SHIPPED["attach" if params["op"] in ("attach", "detach") else "plain"]
    sources = {
        name: (_CORE if name in _CORE_MODULES else _TARGET).joinpath(f"{name}.py").read_text()
        for name in shipped
    }
    runner = (_TARGET / "runner.py").read_text()
    return f"{runner}\n\nrun_job(JOB_DIR, AGENT_LAND, {sources!r}, {params!r})\n"


def _unload(target: Target, injection: _inject.Injection | None, tid: object) -> None:
    """Wait for the agent's thread to end (its code is in the library), then
    unload the library. A library that could not be unloaded (its main
    thread never at a safe point in time) stays mapped, unused: a warning,
    not a failure of the job, whose answer stands."""
    wait_until = time.monotonic() + _AGENT_EXIT_WAIT
    while isinstance(tid, int) and task_exists(target.pid, tid):
        if time.monotonic() >= wait_until:
            if injection is not None:
                injection.abandon()  # never unload code a thread may still run
            return
        time.sleep(_POLL)  # the agent thread is releasing the GIL and ending
    if injection is not None and still_running(target):
        try:
            injection.unload()
        except AttachFailed as error:
            logger.warning("threadctl: warning: %s", error)


def agent_library() -> Path:
    """The agent library built for this installation."""
    if not _native_library.PATH.exists():
        raise AttachFailed(
            "threadctl's attach agent was not built (installed with"
            " THREADCTL_WITHOUT_NATIVE=1?); reinstall it with a C compiler present"
        )
    return _native_library.PATH


class _JobDir:
    """The private directory of one job, as the caller and as the target see it."""

    def __init__(self, target: Target, *, needs_exec: bool) -> None:
        self.target = target
        self._hand_over = os.geteuid() != target.uid
        base = _base_directory(target, needs_exec)
        self.path = Path(tempfile.mkdtemp(prefix="threadctl-attach-", dir=target.root + base))
        self._seen_as = f"{base}/{self.path.name}"

    def __enter__(self) -> _JobDir:
        if self._hand_over:
            os.chown(self.path, self.target.uid, self.target.gid)
        return self

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def target_path(self, name: str) -> str:
        return f"{self._seen_as}/{name}" if name else self._seen_as

    def write(self, name: str, data: bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.path / name, flags, 0o600)
        with os.fdopen(fd, "wb") as f:
            if self._hand_over:
                os.fchown(f.fileno(), self.target.uid, self.target.gid)
            f.write(data)

    def wait_result(self, deadline: float) -> dict[str, Any]:
        while True:
            answer = self._read_result()
            if answer is not None:
                return answer
            if not still_running(self.target):
                raise TargetExited(f"process {self.target.pid} exited during the attach")
            if time.monotonic() >= deadline:
                return self._cancel()
            time.sleep(_POLL)

    def _cancel(self) -> dict[str, Any]:
        pid = self.target.pid
        try:
            (self.path / "job.py").unlink()
        except FileNotFoundError:
            pass  # claimed: the job runs; give it a moment to answer
        else:
            raise AttachFailed(
                f"deadline passed before the agent could run in process {pid} (a thread may"
                " hold the GIL in a long C call); the job was cancelled, nothing ran, and"
                " the agent ends without doing anything"
            )
        until = time.monotonic() + _CLAIMED_GRACE
        while time.monotonic() < until:
            answer = self._read_result()
            if answer is not None:
                return answer
            time.sleep(_POLL)
        raise AttachFailed(
            f"deadline passed while the job ran in process {pid}; its outcome is unknown"
            " (the process's threadctl.audit log records control actions)"
        )

    def _read_result(self) -> dict[str, Any] | None:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(self.path / "result.json", flags)
        except FileNotFoundError:
            return None
        except OSError as error:  # a symlink (ELOOP) or something else planted there
            raise AttachFailed(f"unexpected result file in {self.path}: {error.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid not in (self.target.uid, 0):
                raise AttachFailed(f"unexpected result file in {self.path}; ignored")
            data = f.read(_MAX_RESULT_BYTES)
        try:
            answer = json.loads(data)
        except ValueError:
            raise AttachFailed(f"process {self.target.pid} answered garbage") from None
        return answer if isinstance(answer, dict) else {"ok": False, "error": "bad answer"}


def _base_directory(target: Target, needs_exec: bool) -> str:
    """A world-traversable temporary directory of the target's that allows
    mapping code (the agent is loaded from it): /tmp unless mounted noexec."""
    for base in ("/tmp", "/dev/shm", "/var/tmp"):
        with contextlib.suppress(OSError):
            flags = os.statvfs(target.root + base).f_flag
            if not needs_exec or not flags & os.ST_NOEXEC:
                return base
    raise NotAttachable(
        f"no directory of process {target.pid} allows loading the agent (/tmp, /dev/shm and"
        " /var/tmp are mounted noexec)"
    )
