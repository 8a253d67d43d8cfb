"""The in-process API's listings and stops, answering with the client's types.

`threadctl.list_threads()` and `Client.list_threads()` return the same
ThreadList, `threadctl.stop()` and `Client.stop_thread()` the same
StopResult, and so on: code moves between the host and a remote tool
without a rewrite, and one set of types is documented. The answers take
the one road every answer takes (domain result -> proto fields (_fields)
-> message -> threadctl.client's model), so the two sides cannot drift.
The domain functions behind them (_control, _stop_all) stay the internal
API of the servicer, the signal handlers and one-shot jobs.
"""

from __future__ import annotations

from threadctl import _control, _stop_all
from threadctl._fields import process_fields
from threadctl._rpc._proto_mapping import listed_records, stop_all_response, stop_response, to_proto
from threadctl._selector import Selector
from threadctl.client._models import StopAllResult, StopResult, ThreadInfo, ThreadList
from threadctl.v1 import threadctl_pb2 as pb


def list_threads(include_stacks: bool = False) -> ThreadList:
    """Every live thread of this process (with stacks if asked), as a
    client's listing: `.process` and `.threads`."""
    response = pb.ListThreadsResponse(
        process=pb.ProcessInfo(**process_fields()),
        threads=listed_records(include_stacks),
    )
    return ThreadList.from_proto(response, include_stacks)


def get_thread(
    ident: int | None = None, native_id: int | None = None, *, name: str | None = None
) -> ThreadInfo:
    """One thread, stack included (name it by ident, kernel TID or exact name).

    Raises:
        InvalidArgument, ThreadNotFound.
    """
    found = _control.get_thread_by(Selector(ident=ident, native_id=native_id, name=name))
    return ThreadInfo.from_proto(to_proto(found), with_stack=True)


def stop(
    ident: int | None = None,
    native_id: int | None = None,
    *,
    name: str | None = None,
    expected_identity: str = "",
    reason: str = "",
    wait: float = 0.0,
    force: bool = False,
    grace: float = 0.0,
    allow_main_thread: bool = False,
) -> StopResult:
    """Stop one thread: cooperatively, or by force, and optionally wait for it to exit.

    A cooperative stop sets the thread's stop flag. A forced stop also raises
    threadctl.ForcedStop inside the thread: at once if it runs Python code,
    when it returns from C code if it is blocked there (outcome
    FORCE_PENDING), or when it leaves its critical section or the standard
    library's lock code (FORCE_DEFERRED; see _core.landing). A thread that
    catches it and goes on (a pool worker whose task it ended) answers
    TASK_ENDED; then the request is over and a new one can force the thread
    again.

    Args:
        ident: threading ident of the thread (or give `native_id` or `name`).
        native_id: kernel TID of the thread.
        name: the thread's exact name, if no other live thread has it.
        expected_identity: if not empty, stop only if the thread still has this
            identity (ThreadInfo.identity); guards against reused ids.
        reason: why, for the audit log and listings (at most 1024 characters).
        wait: seconds to wait for the thread to exit (0 to 3600), after the
            grace period.
        force: raise ForcedStop in the thread. Never implied.
        grace: with `force`, stop cooperatively first and force only if the
            thread is still alive after this many seconds (0 to 3600).
        allow_main_thread: the main thread is refused unless this is True.

    Raises:
        InvalidArgument, ThreadNotFound, IdentityMismatch, ProtectedThread.
    """
    result = _control.stop_thread(
        Selector(ident=ident, native_id=native_id, name=name),
        expected_identity=expected_identity,
        reason=reason,
        wait=wait,
        force=force,
        grace=grace,
        allow_main_thread=allow_main_thread,
    )
    return StopResult.from_proto(stop_response(result))


def stop_all(
    *,
    grace: float = 5.0,
    force: bool = False,
    wait: float = 1.0,
    reason: str = "",
    include_main_thread: bool = False,
    include_calling_thread: bool = False,
) -> StopAllResult:
    """Stop every thread that may be stopped, cooperatively first.

    Protected threads (the control server's) are never touched; the main
    thread and the calling thread only when asked.

    Args:
        grace: seconds to wait for all threads to exit after the cooperative
            stop (0 to 3600).
        force: force-stop the threads still alive after the grace period.
        wait: with `force`, seconds to wait for forced threads to exit.
        reason: why, for the audit log and listings.
        include_main_thread: stop the main thread too.
        include_calling_thread: stop the calling thread too (its flag is set;
            it is never forced, and not waited for).

    Returns:
        A report per thread acted on (`.threads`), and `.all_exited`.
    """
    result = _stop_all.stop_all(
        grace=grace,
        force=force,
        wait=wait,
        reason=reason,
        include_main_thread=include_main_thread,
        include_calling_thread=include_calling_thread,
    )
    return StopAllResult.from_proto(stop_all_response(result))
