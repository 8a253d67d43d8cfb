"""The audit trail: one structured record per control action.

Records go to the `threadctl.audit` logger at INFO; the host decides where
they end up. threadctl never configures logging itself (no handlers on the
root logger, no basicConfig). Each record carries a `threadctl_audit` dict in
its `extra` for structured handlers, and a key=value message for plain ones.

Every refusal of a control request is a record too (outcome "refused", the
error): bad input, a policy (forced stops disabled), a role too weak, a
server shutting down. Calls without any credentials are not: anyone who can
connect could then write to the host's log without limit. A caller's name
may carry what the client only claims (the uid a local client sends); it
says "claimed" then (see _auth).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from threadctl._control import StopResult
    from threadctl._stop_all import StopAllResult, ThreadReport
    from threadctl._tasks.cancel import CancelResult

logger = logging.getLogger("threadctl.audit")


def _emit(fields: dict[str, object]) -> None:
    message = " ".join(f"{key}={value!r}" for key, value in fields.items())
    logger.info("threadctl %s", message, extra={"threadctl_audit": fields})


def stop_done(*, caller: str, mode: str, result: StopResult, reason: str) -> None:
    thread = result.thread
    _emit(
        {
            "action": "stop",
            "mode": mode,
            "caller": caller,
            "ident": thread.ident,
            "native_id": thread.native_id,
            "name": thread.name,
            "identity": thread.identity,
            "reason": reason,
            "outcome": result.outcome.value,
            "already_requested": result.already_requested,
            "forced": result.forced,
        }
    )


def stop_refused(
    *,
    caller: str,
    ident: int | None,
    native_id: int | None,
    mode: str,
    reason: str,
    error: Exception | str,
) -> None:
    refused(
        action="stop",
        caller=caller,
        error=error,
        mode=mode,
        ident=ident,
        native_id=native_id,
        reason=reason,
    )


def refused(*, action: str, caller: str, error: Exception | str, **fields: object) -> None:
    """A control request refused before it acted (`action`: stop, stop_all, cancel).

    A refused request's reason may be over-long or hold control characters
    (that may be why it was refused): it is cut to 1024 characters, and the
    message shows it as repr() does."""
    if isinstance(fields.get("reason"), str):
        fields["reason"] = str(fields["reason"])[:1024]
    _emit({"action": action, "caller": caller, **fields, "outcome": "refused", "error": str(error)})


def task_cancelled(*, caller: str, result: CancelResult, reason: str, forced: bool) -> None:
    task = result.task
    _emit(
        {
            "action": "cancel",
            "caller": caller,
            "task_id": task.task_id,
            "name": task.name,
            "coroutine": task.coroutine,
            "loop_id": task.loop_id,
            "reason": reason,
            "outcome": result.outcome.value,
            "forced": forced,
        }
    )


def thread_ended(thread: threading.Thread | None, *, forced: bool) -> None:
    """A thread died of a stop exception (recorded instead of a traceback)."""
    _emit(
        {
            "action": "thread_ended",
            "by": "forced stop" if forced else "stop exception",
            "ident": getattr(thread, "ident", None),
            "native_id": getattr(thread, "native_id", None),
            "name": getattr(thread, "name", None),
        }
    )


def stop_all_thread(*, caller: str, report: ThreadReport, reason: str) -> None:
    """One record per thread a stop_all acted on."""
    thread = report.thread
    _emit(
        {
            "action": "stop_all.thread",
            "caller": caller,
            "ident": thread.ident,
            "native_id": thread.native_id,
            "name": thread.name,
            "identity": thread.identity,
            "reason": reason,
            "outcome": report.outcome.value,
            "forced": report.forced,
        }
    )


def stop_all_done(*, caller: str, result: StopAllResult, reason: str, force: bool) -> None:
    """One record for the whole stop_all request."""
    _emit(
        {
            "action": "stop_all",
            "caller": caller,
            "reason": reason,
            "force": force,
            "threads": len(result.threads),
            "exited": sum(r.outcome.value == "exited" for r in result.threads),
            "forced": sum(r.forced for r in result.threads),
            "all_exited": result.all_exited,
            "waited_seconds": round(result.waited_seconds, 3),
        }
    )
