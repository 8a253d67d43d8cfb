"""A one-shot forced stop in a process without threadctl (runs inside the target).

Part of the job (see _oneshot.py, which is sent before this file and
provides JobError, _audit, _plain_record and _capture_stacks). It does what
threadctl's own forced stop does (server/_force.py): the thread must still
be the same live `threading` thread while `threading`'s registry lock is
held when the exception *class* is queued (idents are reused at once), the
main thread needs allow_main, threads started outside `threading` are
refused, and so are ThreadPoolExecutor workers (without threadctl's Future
conversion, the stop would leave the task as a BaseException, raised again
in whichever thread reads the result), and the answer is exited, delivered
or pending with the frame the thread is blocked in. The exception class
is made per job; a chained quiet threading.excepthook (it swallows only
that class) lets the thread end without a traceback and writes the audit
record instead.
"""

import os
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # in the job these are _oneshot.py's, sent before this file
    from threadctl.client._oneshot import (
        DELIVERY_WINDOW,
        JobError,
        _audit,
        _capture_stacks,
        _native_id,
        _plain_record,
    )


def _plain_force(params: dict) -> dict:
    thread = _find_thread(params["tid"])
    fields = {"ident": thread.ident, "native_id": _native_id(thread), "name": thread.name}
    try:
        _check_forcible(thread, params)
    except JobError as error:
        _audit(
            params,
            action="stop",
            mode="force",
            outcome="refused",
            reason=params["reason"],
            error=str(error),
            **fields,
        )
        raise
    delivered = threading.Event()
    raised_at = []

    class ForcedStop(BaseException):
        """Raised in the thread by `threadctl stop --force --attach`."""

        _threadctl_one_shot_stop = params  # who sent it, for the hook's audit record

        def __init__(self, *args: object) -> None:
            super().__init__(*args or ("forced stop (threadctl one-shot attach)",))
            raised_at.append(time.time())
            delivered.set()

    ForcedStop.__module__ = "threadctl"
    _install_quiet_excepthook()
    record = _plain_record(thread, None)
    started = time.monotonic()
    if not _send_exception(thread, ForcedStop):
        raise JobError("not_found", f"thread {params['tid']} exited before the stop could be sent")
    forced_at = time.time()
    if params["wait"] > 0:
        thread.join(params["wait"])
    else:
        delivered.wait(DELIVERY_WINDOW)
    exited = not thread.is_alive()
    outcome = "exited" if exited else "force_delivered" if raised_at else "force_pending"
    record.update(
        stop_state="force_delivered" if raised_at else "force_pending",
        stop_reason=params["reason"],
        stop_requested_at=forced_at,
        forced_at=forced_at,
        force_delivered_at=raised_at[0] if raised_at else 0.0,
        stack=[],
        callee=None,
    )
    if outcome == "force_pending":
        frames = _capture_stacks(1, [thread.ident]).get(thread.ident, {}).get("frames")
        record["blocked_in"] = frames[-1] if frames else None
    _audit(params, action="stop", mode="force", outcome=outcome, reason=params["reason"], **fields)
    return {
        "outcome": outcome,
        "forced": True,
        "already_requested": False,
        "waited_seconds": time.monotonic() - started,
        "thread": record,
    }


def _find_thread(tid: int) -> threading.Thread:
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        threads = list(threading._active.values())  # type: ignore[attr-defined]
    me = threading.get_ident()
    for key in (_native_id, lambda thread: thread.ident):
        for thread in threads:
            if key(thread) == tid and thread.ident != me:
                return thread
    raise JobError("not_found", f"no thread with TID or ident {tid} in process {os.getpid()}")


def _check_forcible(thread: threading.Thread, params: dict) -> None:
    if isinstance(thread, threading._DummyThread):  # type: ignore[attr-defined]
        raise JobError(
            "refused", f"thread {thread.name!r} was not started by `threading`; it is never forced"
        )
    if thread is threading.main_thread() and not params["allow_main"]:
        raise JobError("refused", "the main thread is protected; use --allow-main to stop it")
    if _is_pool_worker(thread):
        raise JobError(
            "refused",
            f"thread {thread.name!r} is a concurrent.futures pool worker: a one-shot stop"
            " would leave its task's Future as a BaseException, raised again where the"
            " program reads the result (it ends a gunicorn gthread worker process), or hit"
            f" its next task; run `threadctl attach {os.getpid()}` and force it there (that"
            " ends only the task)",
        )


def _is_pool_worker(thread: threading.Thread) -> bool:
    """Whether `thread` runs a ThreadPoolExecutor's worker loop (its target
    while it runs: Thread.run drops it only after the target returned)."""
    pool = sys.modules.get("concurrent.futures.thread")
    worker = getattr(pool, "_worker", None)
    return worker is not None and getattr(thread, "_target", None) is worker


def _send_exception(thread: threading.Thread, exception: type) -> bool:
    """Queue `exception` in `thread` if it is still the live thread registered
    under its ident. Holding threading's registry lock, the thread cannot
    finish exiting, so its ident cannot pass to a new thread meanwhile."""
    import ctypes

    api = ctypes.pythonapi
    send = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
        ("PyThreadState_SetAsyncExc", api)
    )
    clear = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
        ("PyThreadState_SetAsyncExc", api)
    )
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        alive = threading._active.get(thread.ident) is thread and thread.is_alive()  # type: ignore[attr-defined]
        sent = send(thread.ident, exception) if alive else 0
        if sent > 1:  # never expected: take it back everywhere
            clear(thread.ident, None)
    return sent == 1


def _install_quiet_excepthook() -> None:
    current = threading.excepthook
    if getattr(current, "_threadctl_one_shot", False):
        return

    def quiet(args: "threading.ExceptHookArgs", previous: object = current) -> None:
        sent_by = getattr(args.exc_type, "_threadctl_one_shot_stop", None)
        if isinstance(sent_by, dict):
            thread = args.thread
            _audit(
                sent_by,
                action="thread_ended",
                by="forced stop",
                ident=getattr(thread, "ident", None),
                native_id=getattr(thread, "native_id", None),
                name=getattr(thread, "name", None),
            )
            return
        previous(args)  # type: ignore[operator]

    quiet._threadctl_one_shot = True  # type: ignore[attr-defined]
    threading.excepthook = quiet
