"""Getting the agent to run inside a target process.

CPython 3.10 to 3.13: pyinjector (kubo/injector under it) attaches with
ptrace, makes the process's main thread call dlopen() on the agent library on
a scratch stack, restores its registers and detaches. Chosen over gdb: a
pip-installable wheel for every supported version (no system package, same
on CI), about 60 ms instead of 0.3 to 0.5 s, it stops only the borrowed thread
(gdb's all-stop mode stops every thread for the whole session), and its
errors are codes rather than text to parse. The agent's constructor only
starts a thread (_agent/agent.c), so the borrowed thread runs no Python. Once
the job is done and that thread has ended, the injector is asked to unload
the library again (Injection.unload): one-shot jobs leave nothing mapped.

The injector runs in a child process because the call cannot be interrupted
in-process (it holds the GIL) and so the deadline can be kept. The child says
how far it got, and that decides what happens when the deadline passes:

- before ATTACHED: the child looks for a safe point until shortly before
  the deadline and then answers BUSY itself; if it does not, it gets
  SIGTERM, and stops looking between two tries. It is never killed: each
  try runs system calls in the target, and a tracer killed during one
  leaves the thread to run into a breakpoint with no tracer, which kills
  the process. A child that does not end then is left to end on its own. A
  SIGSTOP of PTRACE_ATTACH may outlive the tracer, so a process found
  stopped afterwards gets SIGCONT (stopped ones were refused earlier).
- after ATTACHED: the main thread is inside the remote dlopen(). Killing the
  tracer now would let that call return into a trap with no tracer, which
  kills the process, so the child is left to finish and detach on its own
  (the process is running, not stopped). The caller cancels the job.

The hazard common to every ptrace injector (gdb too): the borrowed thread
runs dlopen() wherever it was stopped; stopped inside the dynamic loader it
corrupts the loader's state and the process dies, inside malloc it can
deadlock. So the child calls only once the thread is stopped at a safe point
(_injector), for the load and for the unload, blocks signals on it for the
call, and gives it back its vector registers, which pyinjector does not
restore.

CPython 3.14 and later: `sys.remote_exec` (PEP 768) runs a script at a safe
point of the main thread; the script only starts a thread for the job. Not
tested here (no 3.14 interpreter on these machines), and it needs threadctl
itself to run on 3.14+.
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from threadctl.client.attach._errors import AttachFailed, PtraceNotPermitted, TargetExited
from threadctl.client.attach._inspect import Target, process_stat, ptrace_message, still_running

_INJERR_NO_PROCESS = -3
_INJERR_PERMISSION = -8
# After DETACHED is due: munmap and PTRACE_DETACH take microseconds.
_DETACH_GRACE = 1.0
# For the unload: attaching at a safe point, one dlclose() call in the target,
# a detach; the child looks for a safe point for all but _CHILD_MARGIN of it.
_UNLOAD_TIMEOUT = 5.0
# How long a child told to stop looking for a safe point may take to end.
_CANCEL_GRACE = 1.0

# The injector child: a script of its own (stdlib and pyinjector), see there.
_INJECTOR = Path(__file__).with_name("_injector.py")
# Of the time before the deadline, what the child does not spend looking for
# a safe point: so its own answer (BUSY) comes before the deadline.
_CHILD_MARGIN = 0.25

# The agent's bootstrap (see agent.c) for sys.remote_exec: the script runs on
# the main thread, so it only starts a thread that claims and runs the job.
REMOTE_SCRIPT = """\
import _thread as _threadctl_thread
_threadctl_thread.start_new_thread(exec, ({source!r}, {{"__name__": "__threadctl_boot__"}}))
del _threadctl_thread
"""
REMOTE_BOOTSTRAP = """\
import os
job_dir = {job_dir!r}
try:
    os.rename(job_dir + '/job.py', job_dir + '/job.claimed')
except OSError:
    pass
else:
    with open(job_dir + '/job.claimed', 'rb') as job_file:
        job_source = job_file.read()
    job_globals = {{'__name__': '__threadctl_job__', 'JOB_DIR': job_dir, 'AGENT_LAND': None}}
    try:
        exec(compile(job_source, job_dir + '/job.claimed', 'exec'), job_globals)
    finally:
        job_globals.clear()
"""


def uses_remote_exec(target: Target) -> bool:
    return target.python > (3, 13)


def check_available(target: Target) -> None:
    """Raise AttachFailed now if this environment cannot inject into `target`."""
    if uses_remote_exec(target):
        if not hasattr(sys, "remote_exec"):
            raise AttachFailed(
                f"process {target.pid} runs CPython {target.version_text}: attaching uses"
                " sys.remote_exec, which needs threadctl itself to run on CPython 3.14 or newer"
                f" (it runs {sys.version.split()[0]})"
            )
    elif importlib.util.find_spec("pyinjector") is None:
        raise AttachFailed("attaching needs the pyinjector package: pip install pyinjector")


class Injection:
    """A loaded agent library; unload() it once its thread has ended."""

    def __init__(self, target: Target, child: subprocess.Popen[bytes] | None) -> None:
        self._target = target
        self._child = child

    def unload(self, timeout: float = _UNLOAD_TIMEOUT) -> None:
        """Have the injector dlclose() the library in the target, so nothing of
        it stays mapped (the agent cannot unload itself: dlclose would return
        into unmapped code). Like the load, this borrows the main thread for
        one call. Raises AttachFailed if it could not be done."""
        child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None
        try:
            child.stdin.write(f"UNLOAD {timeout - _CHILD_MARGIN:.3f}\n".encode())
            child.stdin.close()
        except OSError:
            pass
        lines = _read_lines(child, time.monotonic() + timeout, until="UNLOADED")
        if "UNLOADED" in lines:
            child.wait()
            return
        if child.poll() is None:
            _ABANDONED.append(child)  # still inside the call: it detaches on its own
        else:
            child.wait()
        error = next((line for line in lines if line.startswith("ERROR ")), "no answer")
        raise AttachFailed(
            f"the agent could not be unloaded from process {self._target.pid} ({error}); it"
            " stays mapped there, unused"
        )

    def abandon(self) -> None:
        """Leave the library loaded (the job may still run): end the injector."""
        child, self._child = self._child, None
        if child is not None and child.stdin is not None:
            child.stdin.close()


def inject_library(target: Target, library: str, deadline: float) -> Injection:
    """Load `library` (a path as the target sees it) into the target.

    Raises:
        PtraceNotPermitted, TargetExited, AttachFailed (deadline or dlopen error).
    """
    seconds = max(deadline - time.monotonic() - _CHILD_MARGIN, 0.0)
    child = subprocess.Popen(
        [sys.executable, "-I", str(_INJECTOR), str(target.pid), library, f"{seconds:.3f}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C of the caller must not kill it mid-call
    )
    lines = _read_lines(child, deadline, until="DETACHED")
    if "DETACHED" in lines:
        return Injection(target, child)
    assert child.stdin is not None
    child.stdin.close()
    error = next((line for line in lines if line.startswith("ERROR ")), None)
    if error is not None:
        child.wait()
        _raise_injector_error(target, error)
    if child.poll() is not None:
        stderr = child.stderr.read().decode(errors="replace").strip() if child.stderr else ""
        raise AttachFailed(f"the injector failed: {stderr.splitlines()[-1] if stderr else '?'}")
    if "ATTACHED" not in lines:
        child.terminate()  # never kill(): see the module docstring
        lines += _read_lines(child, time.monotonic() + _CANCEL_GRACE, until="DETACHED")
    if "ATTACHED" not in lines:
        try:
            child.wait(_CANCEL_GRACE)
        except subprocess.TimeoutExpired:
            _ABANDONED.append(child)  # still inside an attach or a detach; ends on its own
        _resume_if_stopped(target)
        raise AttachFailed(
            f"deadline passed before process {target.pid} could be attached to; nothing was"
            " injected and it runs on"
        )
    _ABANDONED.append(child)  # finishes on its own; see the module docstring
    raise AttachFailed(
        f"deadline passed while the main thread of process {target.pid} was loading the agent"
        " (dlopen may be blocked where that thread was stopped); the injector"
        f" (pid {child.pid}) detaches when that call returns, the process is not stopped,"
        " and the job was cancelled"
    )


def remote_exec(target: Target, script: str) -> None:
    """Run `script` (a path as the target sees it) with sys.remote_exec."""
    if sys.version_info < (3, 14):
        raise RuntimeError("sys.remote_exec needs CPython 3.14")  # never: see inject()
    try:
        sys.remote_exec(target.pid, script)
    except PermissionError:
        raise PtraceNotPermitted(ptrace_message(target.pid, target.uid)) from None
    except ProcessLookupError:
        raise TargetExited(f"process {target.pid} exited during the attach") from None
    except (OSError, RuntimeError) as error:
        raise AttachFailed(f"sys.remote_exec failed: {error}") from None


_ABANDONED: list[subprocess.Popen[bytes]] = []


def _read_lines(child: subprocess.Popen[bytes], deadline: float, until: str) -> list[str]:
    """The child's stdout lines until it exits, reports an error, prints
    `until`, or the deadline passes (extended by _DETACH_GRACE once INJECTED
    is in)."""
    assert child.stdout is not None
    lines: list[str] = []
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        while True:
            due = deadline + (_DETACH_GRACE if "INJECTED" in lines else 0.0)
            remaining = due - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return lines
            chunk = os.read(child.stdout.fileno(), 4096)
            if not chunk:
                return lines
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            lines += [line.decode(errors="replace") for line in complete]
            if until in lines or any(line.startswith("ERROR ") for line in lines):
                return lines


def _raise_injector_error(target: Target, line: str) -> None:
    _, code, text = [*line.split(" ", 2), "", ""][:3]
    if code == "BUSY":
        raise AttachFailed(
            f"nothing was loaded into process {target.pid}: {text}; it runs on untouched, try again"
        )
    if code == "REGISTERS":
        raise AttachFailed(f"nothing was loaded into process {target.pid}: {text}")
    if int(code or 0) == _INJERR_PERMISSION:
        raise PtraceNotPermitted(ptrace_message(target.pid, target.uid))
    if int(code or 0) == _INJERR_NO_PROCESS or not still_running(target):
        raise TargetExited(f"process {target.pid} exited during the attach ({text})")
    raise AttachFailed(f"injecting the agent into process {target.pid} failed: {text}")


def _resume_if_stopped(target: Target) -> None:
    """SIGCONT the process if the SIGSTOP of an interrupted PTRACE_ATTACH stopped it."""
    for _ in range(10):
        state, start = process_stat(target.pid)
        if start != target.start_ticks:
            return
        if state == "T":
            os.kill(target.pid, signal.SIGCONT)
            return
        time.sleep(0.02)
