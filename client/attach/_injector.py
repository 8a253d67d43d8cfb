"""The injector child (see _inject): loads a library into a process with
pyinjector at a safe point of its main thread, and unloads it later.

Run as a script in its own interpreter (`python -I _injector.py PID LIBRARY
SECONDS`): standard library and pyinjector only. It prints how far it got
(ATTACHED, INJECTED, DETACHED; ERROR CODE TEXT), then waits for a line
`UNLOAD SECONDS` on stdin and prints UNLOADED.

SIGTERM cancels it while it looks for a safe point: it stops looking, between
two tries, and answers `ERROR CANCELLED`. It must never be killed there:
each try runs system calls in the target (pyinjector's mmap on attach,
munmap on detach), and a tracer that dies during one leaves the thread to
run into a breakpoint with no tracer, which kills the process.

The safe point. The injector makes the main thread call dlopen() (dlclose()
for the unload) wherever it stopped it. glibc's loader lock is recursive, so
a thread stopped inside the dynamic loader (importing an extension module, a
ctypes.CDLL, a lazy symbol binding) enters dlopen() again with the loader's
lists half updated, and the process dies ("Inconsistency detected by ld.so",
exit 127: 1 in 12 one-shot listings of a program that loads libraries in a
loop; CI saw a gunicorn worker die of SIGSEGV when listed just after its
boot). A thread stopped inside malloc would enter malloc again with its
per-thread cache half updated, or wait for the arena lock it holds itself.
So once attached, the child looks where the thread stopped
(`/proc/PID/syscall`: in which system call, if any, and the program counter;
`/proc/PID/maps`: in which file) and lets the call happen only
- outside the C library and the loader: the interpreter, extension modules
  and the vDSO hold none of the state dlopen() uses; or
- in a system call made by the C library, other than those of memory and
  thread management that malloc and pthread_create make while they hold
  their state (mmap, munmap, mprotect, brk, mremap, madvise, clone): a
  thread waiting in epoll_wait, poll, futex (the GIL), read, ... holds none.
Anywhere else it detaches and looks again RETRY_SECONDS later, for up to
SECONDS; then it answers `ERROR BUSY ...` and nothing was called.

The vector registers. pyinjector restores only the general-purpose registers
after its call, and dlopen()/dlclose() run glibc's string and copy routines,
which use the SSE/AVX registers (and vzeroupper clears the upper halves):
code stopped between writing such a register and using it (the
interpreter's struct copies, a numeric loop) went on with other values in
it. Every one-shot did this to a main thread stopped in C code, and the
interpreter it happened to died of SIGSEGV about once in 400 one-shots. So
the child saves the thread's whole floating-point and vector state
(PTRACE_GETREGSET: NT_X86_XSTATE on x86_64, NT_PRFPREG on aarch64) before
the call and writes it back after; on any other machine it calls nothing.
glibc's dlopen() and dlclose() leave errno as they found it when they
succeed (measured), so errno needs no such care.

Signals. pyinjector treats a signal that stops the thread during its call
as a failure: it puts the registers back in the middle of dlopen() (the
loader's lock held, its lists half updated) and resumes the thread without
the signal. So the child blocks every signal on the thread for the call
(PTRACE_SETSIGMASK; process-directed ones go to the other threads, the
rest wait) and writes its mask back after. A signal that stops the thread
while pyinjector attaches (its mmap) fails only that try: nothing was
called, the child sends the signal again (kill) and tries again. Left:
pyinjector's detach (its munmap) drops a signal that stops the thread there
without saying so: one still pending when the mask is written back (sent
during the call to this thread alone, or to a process whose other threads
all block it), or one that comes during a try that found no safe point.

Hazards left: a thread that waits in a system call while it holds the
loader lock (a library constructor that blocks) is taken as safe (glibc
supports dlopen() from a constructor); in a statically linked interpreter
the C library is part of the executable and cannot be told apart.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

RETRY_SECONDS = 0.001
# System calls that malloc and thread creation make with their state held,
# by machine (other machines: none known, every C library call is allowed).
_HELD_STATE_SYSCALLS = {
    # mmap, mprotect, munmap, brk, mremap, madvise, clone, fork, vfork, clone3
    "x86_64": {9, 10, 11, 12, 25, 28, 56, 57, 58, 435},
    # munmap, mremap, clone, mmap, mprotect, madvise, clone3 (brk: 214)
    "aarch64": {214, 215, 216, 220, 222, 226, 233, 435},
}


def unsafe_point(pid: int) -> str:
    """Why the stopped main thread of `pid` may not call into the loader now
    ("" if it may). The thread must be stopped (attached to)."""
    with open(f"/proc/{pid}/syscall") as f:
        fields = f.read().split()
    if not fields or fields[0] == "running":
        return "it was still running"
    syscall, pc = int(fields[0]), int(fields[-1], 16)
    name = os.path.basename(_mapped_file(pid, pc))
    if name.startswith("ld-linux"):  # glibc's loader (ld-linux-x86-64.so.2, ...)
        return "it was inside the dynamic loader"
    # musl is C library and loader in one file (ld-musl-*.so.1): as libc.
    if not name.startswith(("libc.so", "libc-", "libpthread", "ld-musl")):
        return ""
    if syscall < 0:
        return "it was inside the C library (maybe in malloc)"
    if syscall in _HELD_STATE_SYSCALLS.get(os.uname().machine, set()):
        return f"it was in system call {syscall} of malloc or thread creation"
    return ""


_PTRACE_GETREGSET = 0x4204
_PTRACE_SETREGSET = 0x4205
_PTRACE_GETSIGMASK = 0x420A
_PTRACE_SETSIGMASK = 0x420B
# The register set of the floating-point and vector registers, by machine.
_VECTOR_REGSET = {"x86_64": 0x202, "aarch64": 2}  # NT_X86_XSTATE, NT_PRFPREG
# Room for the largest x86 XSAVE area (AVX-512 and AMX: about 11 KiB).
_VECTOR_STATE_BYTES = 64 * 1024


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


@contextlib.contextmanager
def thread_state_kept(pid: int) -> Iterator[None]:
    """Save the stopped thread `pid`'s floating-point and vector registers and
    its signal mask, block every signal, and write both back afterwards (see
    the module docstring). Call from the thread that attached (ptrace
    requests come from the tracer thread).

    Raises:
        CannotSave: they could not be saved; nothing was called.
    """
    machine = os.uname().machine
    regset = _VECTOR_REGSET.get(machine)
    if regset is None:
        raise CannotSave(f"the vector registers of a {machine} machine are not known here")
    ptrace = ctypes.CDLL(None, use_errno=True).ptrace
    ptrace.restype = ctypes.c_long
    ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

    def request(op: int, addr: int, data: Any) -> str:
        """Empty if done, else why not."""
        failed = ptrace(op, pid, addr, ctypes.byref(data)) == -1
        return os.strerror(ctypes.get_errno()) if failed else ""

    state = ctypes.create_string_buffer(_VECTOR_STATE_BYTES)
    io = _IoVec(ctypes.cast(state, ctypes.c_void_p), len(state))
    mask, blocked = ctypes.c_uint64(), ctypes.c_uint64(2**64 - 1)
    size = ctypes.sizeof(mask)
    error = (
        request(_PTRACE_GETREGSET, regset, io)
        or request(_PTRACE_GETSIGMASK, size, mask)
        or request(_PTRACE_SETSIGMASK, size, blocked)
    )
    if error:
        raise CannotSave(f"the main thread's registers and signal mask could not be kept: {error}")
    try:
        yield
    finally:  # io.length is now the size the kernel wrote
        error = request(_PTRACE_SETSIGMASK, size, mask) + request(_PTRACE_SETREGSET, regset, io)
        if error:
            raise OSError(
                f"writing back the main thread's signal mask or registers failed: {error}"
            )


class CannotSave(Exception):
    pass


def _swallowed_signal(failed: Any) -> int | None:
    """The signal pyinjector stopped on and dropped, if that is what failed."""
    found = re.search(r"unexpectedly stopped by signal (\d+)", str(failed.error_str))
    return int(found.group(1)) if found else None


def _mapped_file(pid: int, address: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            low, high = (int(bound, 16) for bound in fields[0].split("-"))
            if low <= address < high:
                return fields[5].strip() if len(fields) > 5 else ""
    return ""


@contextlib.contextmanager
def attached_at_safe_point(pid: int, seconds: float) -> Iterator[Any]:
    """pyinjector's attach(pid), held only once the main thread stopped at a
    safe point; else detached, and tried again until `seconds` pass. Its
    vector registers and signal mask are kept (thread_state_kept).

    Raises:
        Busy: no safe point was seen in time.
        Cancelled: SIGTERM came first.
        CannotSave: its registers or signal mask could not be kept.
        PyInjectorError: attaching failed.
    """
    from pyinjector.api import InjectorError, attach

    deadline = time.monotonic() + seconds
    while True:
        try:
            with attach(pid) as injector:
                reason = "cancelled" if _cancelled else unsafe_point(pid)
                if not reason:
                    with thread_state_kept(pid):
                        yield injector
                    return
        except InjectorError as failed:
            signum = _swallowed_signal(failed)
            if failed.func_name != "injector_attach" or signum is None:
                raise
            os.kill(pid, signum)  # pyinjector resumed the thread without it
            reason = f"signal {signum} arrived while attaching"
        if _cancelled:
            raise Cancelled("cancelled before the main thread was at a safe point")
        if time.monotonic() >= deadline:
            raise Busy(f"the main thread was never at a safe point ({reason}, the last time)")
        time.sleep(RETRY_SECONDS)


class Busy(Exception):
    pass


class Cancelled(Exception):
    pass


# Set by SIGTERM; read only between tries (see the module docstring). A
# plain flag: the handler runs in this thread, which may hold any lock then.
_cancelled = False


def _cancel(signum: int, frame: object) -> None:
    global _cancelled
    _cancelled = True


def main() -> int:
    from pyinjector.api import PyInjectorError

    pid, path, seconds = int(sys.argv[1]), sys.argv[2].encode(), float(sys.argv[3])
    signal.signal(signal.SIGTERM, _cancel)
    failures = (Busy, Cancelled, CannotSave, PyInjectorError)
    try:
        with attached_at_safe_point(pid, seconds) as injector:
            print("ATTACHED", flush=True)
            handle = injector.inject(path)
            print("INJECTED", flush=True)
    except failures as failed:
        return _answer_error(failed)
    print("DETACHED", flush=True)
    # Once the agent's thread has ended, the caller asks for the library to go.
    command = sys.stdin.readline().split()
    if command[:1] != ["UNLOAD"]:
        return 0
    try:
        with attached_at_safe_point(pid, float(command[1])) as injector:
            injector.uninject(handle)
    except failures as failed:
        return _answer_error(failed)
    print("UNLOADED", flush=True)
    return 0


_ERROR_CODES = {Busy: "BUSY", Cancelled: "CANCELLED", CannotSave: "REGISTERS"}


def _answer_error(failed: Exception) -> int:
    """Print `ERROR CODE TEXT` for the caller: our own code, or pyinjector's
    return value and error text."""
    code: object = _ERROR_CODES.get(type(failed)) or getattr(failed, "ret_val", 0)
    text = getattr(failed, "error_str", None) or failed
    print("ERROR", code, str(text).replace("\n", " "), flush=True)
    return 1


if __name__ == "__main__":
    # Every answer is printed and flushed and nothing is attached any more:
    # skip the interpreter's teardown (about 5 ms the caller waits for).
    os._exit(main())
