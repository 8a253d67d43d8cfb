"""The ThreadControl gRPC service: validation and status codes.

This is the one place that knows about gRPC status codes. It turns requests
into calls of `_control`, and domain errors into the codes promised in
threadctl.proto; nothing else is caught here, so a bug surfaces as a bug.

Every refusal of a stop is audited (issue 18.5): the ones decided here (a
bad mode or selector, forced stops disabled, a malformed identity, the
server closing) and an InvalidArgument from _control, which audits only the
refusals it decides after validating (no such thread, identity mismatch,
protected thread).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from typing import NoReturn

import grpc

from threadctl import _audit, _control, _history, _switching
from threadctl._rpc._interceptors import caller_name
from threadctl._rpc._proto_mapping import (
    cancel_response,
    history_response,
    listed_records,
    stop_all_response,
    stop_response,
    tasks_response,
    to_proto,
)
from threadctl._rpc._watch import Watch
from threadctl._selector import Selector
from threadctl._stop_all import stop_all
from threadctl._tasks.cancel import cancel_task
from threadctl._tasks.force import force_task
from threadctl._tasks.listing import list_tasks
from threadctl.errors import InvalidArgument, ThreadctlError, status_of
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

_IDENTITY_PATTERN = re.compile(r"[0-9]{1,20}\.[0-9a-f]{8}")
# Answer a --wait shortly before the caller's deadline rather than after it.
_DEADLINE_MARGIN = 0.1
# How often a watch between two messages checks for cancellation or close.
_ABANDON_CHECK_INTERVAL = 0.25
MAX_WATCHES = 4
_CLOSING = "the control server is shutting down"
_FORCE_DISABLED = (
    "forced stops are disabled in this process (install(allow_forced_stops=False)); nothing was"
    " stopped"
)


class ThreadControlServicer(pb_grpc.ThreadControlServicer):
    """Serves threadctl.v1.ThreadControl for the process it runs in."""

    def __init__(
        self, process: pb.ProcessInfo, closing: threading.Event, *, allow_forced_stops: bool
    ) -> None:
        self._process = process
        self._closing = closing
        self._allow_forced_stops = allow_forced_stops
        self._watch_slots = threading.BoundedSemaphore(MAX_WATCHES)

    def ListThreads(  # noqa: N802 - gRPC method name
        self, request: pb.ListThreadsRequest, context: grpc.ServicerContext
    ) -> pb.ListThreadsResponse:
        self._refuse_if_closing(context)
        records = listed_records(request.include_stacks)
        return pb.ListThreadsResponse(process=self._process, threads=records)

    def GetThread(  # noqa: N802 - gRPC method name
        self, request: pb.GetThreadRequest, context: grpc.ServicerContext
    ) -> pb.GetThreadResponse:
        self._refuse_if_closing(context)
        try:
            found = _control.get_thread_by(_selector_of(request.thread))
        except ThreadctlError as error:
            _abort(context, error)
        return pb.GetThreadResponse(thread=to_proto(found))

    def StopThread(  # noqa: N802 - gRPC method name
        self, request: pb.StopThreadRequest, context: grpc.ServicerContext
    ) -> pb.StopThreadResponse:
        force = request.mode == pb.STOP_MODE_FORCE
        known_mode = request.mode in pb.StopMode.values()
        mode = ("force" if force else "cooperative") if known_mode else f"unknown ({request.mode})"
        which = request.thread.WhichOneof("id")

        def refuse(code: grpc.StatusCode, message: str) -> NoReturn:
            _audit.stop_refused(
                caller=caller_name(context),
                ident=request.thread.ident if which == "ident" else None,
                native_id=request.thread.native_id if which == "native_id" else None,
                mode=mode,
                reason=request.reason,
                error=message,
            )
            context.abort(code, message)
            raise AssertionError("context.abort returned")  # pragma: no cover

        if self._closing.is_set():
            refuse(grpc.StatusCode.UNAVAILABLE, _CLOSING)
        try:
            selector = _selector_of(request.thread)
        except InvalidArgument as error:
            refuse(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        if not known_mode:
            refuse(grpc.StatusCode.INVALID_ARGUMENT, f"unknown stop mode {request.mode}")
        if force and not self._allow_forced_stops:
            refuse(grpc.StatusCode.FAILED_PRECONDITION, _FORCE_DISABLED)
        if request.expected_identity and not _IDENTITY_PATTERN.fullmatch(request.expected_identity):
            refuse(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed expected_identity {request.expected_identity[:40]!r}"
                " (use ThreadRecord.identity from a listing)",
            )
        try:
            result = _control.stop_thread(
                selector,
                expected_identity=request.expected_identity,
                reason=request.reason,
                wait=request.wait_seconds,
                force=force,
                grace=request.grace_seconds,
                allow_main_thread=request.allow_main_thread,
                caller=caller_name(context),
                abandoned=lambda: self._caller_gone(context),
            )
        except InvalidArgument as error:  # raised before _control audits anything
            refuse(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except ThreadctlError as error:  # audited by _control
            _abort(context, error)
        return stop_response(result)

    def StopAllThreads(  # noqa: N802 - gRPC method name
        self, request: pb.StopAllThreadsRequest, context: grpc.ServicerContext
    ) -> pb.StopAllThreadsResponse:
        def refuse(code: grpc.StatusCode, message: str) -> NoReturn:
            _audit.refused(
                action="stop_all",
                caller=caller_name(context),
                error=message,
                reason=request.reason,
                force=request.force,
            )
            context.abort(code, message)
            raise AssertionError("context.abort returned")  # pragma: no cover

        if self._closing.is_set():
            refuse(grpc.StatusCode.UNAVAILABLE, _CLOSING)
        if request.force and not self._allow_forced_stops:
            refuse(grpc.StatusCode.FAILED_PRECONDITION, _FORCE_DISABLED)
        try:
            result = stop_all(
                grace=request.grace_seconds,
                force=request.force,
                wait=request.wait_seconds,
                reason=request.reason,
                include_main_thread=request.include_main_thread,
                caller=caller_name(context),
                abandoned=lambda: self._caller_gone(context),
            )
        except InvalidArgument as error:
            refuse(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except ThreadctlError as error:
            _abort(context, error)
        return stop_all_response(result)

    def WatchThreads(  # noqa: N802 - gRPC method name
        self, request: pb.WatchThreadsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchThreadsResponse]:
        self._refuse_if_closing(context)
        interval = request.interval_seconds or 1.0
        if not math.isfinite(interval) or not 0.1 <= interval <= 60:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"interval_seconds must be between 0.1 and 60, not {request.interval_seconds}",
            )
        if not self._watch_slots.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"at most {MAX_WATCHES} watches at once; try again later",
            )
        try:
            cancelled = threading.Event()
            context.add_callback(cancelled.set)
            watch = Watch(request.include_stacks)
            while not cancelled.is_set() and not self._closing.is_set():
                yield watch.next_message(self._process)
                deadline = time.monotonic() + interval
                while not cancelled.is_set() and not self._closing.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    with _switching.waiting():
                        cancelled.wait(min(remaining, _ABANDON_CHECK_INTERVAL))
        finally:
            self._watch_slots.release()

    def ListTasks(  # noqa: N802 - gRPC method name
        self, request: pb.ListTasksRequest, context: grpc.ServicerContext
    ) -> pb.ListTasksResponse:
        self._refuse_if_closing(context)
        try:
            listing = list_tasks(request.include_stacks, request.thread)
        except ThreadctlError as error:
            _abort(context, error)
        return tasks_response(self._process, listing)

    def CancelTask(  # noqa: N802 - gRPC method name
        self, request: pb.CancelTaskRequest, context: grpc.ServicerContext
    ) -> pb.CancelTaskResponse:
        def refuse(code: grpc.StatusCode, message: str) -> NoReturn:
            _audit.refused(
                action="cancel",
                caller=caller_name(context),
                error=message,
                task_id=request.task_id,
                reason=request.reason,
                forced=request.force,
            )
            context.abort(code, message)
            raise AssertionError("context.abort returned")  # pragma: no cover

        if self._closing.is_set():
            refuse(grpc.StatusCode.UNAVAILABLE, _CLOSING)
        if not request.task_id:
            refuse(grpc.StatusCode.INVALID_ARGUMENT, "task_id: set the id of a listed task")
        if request.force and not self._allow_forced_stops:
            refuse(grpc.StatusCode.FAILED_PRECONDITION, _FORCE_DISABLED)
        try:
            result = (force_task if request.force else cancel_task)(
                request.task_id,
                reason=request.reason,
                wait=request.wait_seconds,
                caller=caller_name(context),
                abandoned=lambda: self._caller_gone(context),
            )
        except InvalidArgument as error:  # raised before cancel_task audits anything
            refuse(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except ThreadctlError as error:  # audited by cancel_task
            _abort(context, error)
        return cancel_response(result)

    def ListHistory(  # noqa: N802 - gRPC method name
        self, request: pb.ListHistoryRequest, context: grpc.ServicerContext
    ) -> pb.ListHistoryResponse:
        self._refuse_if_closing(context)
        return history_response(self._process, _history.entries())

    def _caller_gone(self, context: grpc.ServicerContext) -> bool:
        """True when a wait should end now: server closing, call cancelled,
        or the call's deadline about to pass (answer before it does)."""
        remaining = context.time_remaining()
        return (
            self._closing.is_set()
            or not context.is_active()
            or (remaining is not None and remaining < _DEADLINE_MARGIN)
        )

    def _refuse_if_closing(self, context: grpc.ServicerContext) -> None:
        if self._closing.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, _CLOSING)


def _selector_of(selector: pb.ThreadSelector) -> Selector:
    which = selector.WhichOneof("id")
    if which is None or not getattr(selector, which):
        raise InvalidArgument("thread: set a non-zero ident, native_id or tid_or_ident, or a name")
    return Selector(**{which: getattr(selector, which)})


def _abort(context: grpc.ServicerContext, error: ThreadctlError) -> NoReturn:
    context.abort(grpc.StatusCode[status_of(error)], str(error))
    raise AssertionError("context.abort returned")  # pragma: no cover
