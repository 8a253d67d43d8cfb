"""Domain errors of threadctl, free of gRPC.

The servicer maps these to status codes (one boundary, by STATUS_OF); the
in-process API raises them as they are.
"""

from __future__ import annotations


class ThreadctlError(Exception):
    """Base class of threadctl's errors."""


class InvalidArgument(ThreadctlError, ValueError):
    """A request that can never succeed as written (bad id, reason, wait)."""


class ThreadNotFound(ThreadctlError, LookupError):
    """No live thread has the given ident or native id."""


class TaskNotFound(ThreadctlError, LookupError):
    """No pending asyncio task has that id (it finished, or none had it)."""


class LoopClosed(ThreadctlError):
    """The task's event loop is closed: nothing will run the task again."""


class IdentityMismatch(ThreadctlError):
    """The id now names a different thread than the one the caller saw."""


class ProtectedThread(ThreadctlError):
    """The thread may not be stopped (control-server thread, or main thread)."""


class AlreadyInstalled(ThreadctlError):
    """install() was called while a control server is already running."""


class SocketInUse(ThreadctlError):
    """Another live server answers on the socket path install() wanted."""


class UnsafeRuntimeDirectory(ThreadctlError):
    """No directory for the control socket is private to us: the default one
    could be read or replaced by another user, and no fallback can be made."""


class ServerStartFailed(ThreadctlError):
    """install() could not create the control socket, its token file or a
    listener (full or read-only file system, no permission, address refused).
    What it had created is removed again; the cause is chained."""


class UnsupportedRuntime(ThreadctlError):
    """The process runs where threadctl's server cannot work correctly (gevent
    has monkey-patched threading, see threadctl._gevent): refused at once
    instead of starting a server that would deadlock."""


class TaskStopped(Exception):
    """A task's Future failed because threadctl stopped the thread running it.

    What `future.result()` raises for a thread-pool task that a stop
    (forced, or threadctl.check_stop()) ended: an ordinary Exception, so the
    `except Exception:` around results catches it, and the stop never
    propagates as a BaseException into the thread that collects results. The
    stop exception is its `__cause__`.
    """


class ThreadStopped(BaseException):
    """Raised in a thread to make it unwind because a stop was requested.

    Derives from BaseException, like KeyboardInterrupt and trio's Cancelled, so
    that `except Exception:` in application code does not swallow it.
    """


# The gRPC status (by name) that answers each domain error, looked up along
# the class hierarchy so a new subclass gets its parent's: the servicer and
# one-shot jobs answer with these, and the client maps them back.
STATUS_OF: dict[type[Exception], str] = {
    InvalidArgument: "INVALID_ARGUMENT",
    ThreadNotFound: "NOT_FOUND",
    TaskNotFound: "NOT_FOUND",
    LoopClosed: "FAILED_PRECONDITION",
    IdentityMismatch: "FAILED_PRECONDITION",
    ProtectedThread: "FAILED_PRECONDITION",
    UnsupportedRuntime: "FAILED_PRECONDITION",
}


def status_of(error: BaseException) -> str:
    """The status name for `error` ("INTERNAL" for errors that are not ours)."""
    return next((STATUS_OF[cls] for cls in type(error).__mro__ if cls in STATUS_OF), "INTERNAL")
