"""The ThreadControl gRPC service: validation, status codes, protobuf mapping.

This is the one place that knows about gRPC status codes. It turns requests
into calls of `_control`, and domain errors into the codes promised in
threadctl.proto; nothing else is caught here, so a bug surfaces as a bug.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from typing import NoReturn

import grpc

from threadctl import _control
from threadctl._activity import Activity
from threadctl._interceptors import caller_name
from threadctl._registry import ForceState
from threadctl._snapshot import ThreadSnapshot, snapshot_all
from threadctl._stacks import FrameInfo
from threadctl._stop_all import stop_all
from threadctl.errors import IdentityMismatch, InvalidArgument, ProtectedThread, ThreadNotFound
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

_IDENTITY_PATTERN = re.compile(r"[0-9]{1,20}\.[0-9a-f]{8}")
_STATUS_OF = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    ThreadNotFound: grpc.StatusCode.NOT_FOUND,
    IdentityMismatch: grpc.StatusCode.FAILED_PRECONDITION,
    ProtectedThread: grpc.StatusCode.FAILED_PRECONDITION,
}
_OUTCOME = {
    _control.StopOutcome.REQUESTED: pb.STOP_OUTCOME_REQUESTED,
    _control.StopOutcome.EXITED: pb.STOP_OUTCOME_EXITED,
    _control.StopOutcome.STILL_RUNNING: pb.STOP_OUTCOME_STILL_RUNNING,
    _control.StopOutcome.FORCE_PENDING: pb.STOP_OUTCOME_FORCE_PENDING,
    _control.StopOutcome.FORCE_DEFERRED: pb.STOP_OUTCOME_FORCE_DEFERRED,
    _control.StopOutcome.FORCE_DELIVERED: pb.STOP_OUTCOME_FORCE_DELIVERED,
}
_ACTIVITY = {
    Activity.UNKNOWN: pb.ACTIVITY_UNSPECIFIED,
    Activity.RUNNING: pb.ACTIVITY_RUNNING,
    Activity.SLEEPING: pb.ACTIVITY_SLEEPING,
    Activity.WAITING: pb.ACTIVITY_WAITING,
    Activity.IO: pb.ACTIVITY_IO,
    Activity.BLOCKED: pb.ACTIVITY_BLOCKED,
}
_FORCE_STATE = {
    ForceState.DEFERRED: pb.STOP_STATE_FORCE_DEFERRED,
    ForceState.PENDING: pb.STOP_STATE_FORCE_PENDING,
    ForceState.DELIVERED: pb.STOP_STATE_FORCE_DELIVERED,
}
# Answer a --wait shortly before the caller's deadline rather than after it.
_DEADLINE_MARGIN = 0.1
# How often a watch between two messages checks for cancellation or close.
_ABANDON_CHECK_INTERVAL = 0.25
MAX_WATCHES = 4


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
        records = [to_proto(s) for s in snapshot_all(include_stacks=request.include_stacks)]
        return pb.ListThreadsResponse(process=self._process, threads=records)

    def GetThread(  # noqa: N802 - gRPC method name
        self, request: pb.GetThreadRequest, context: grpc.ServicerContext
    ) -> pb.GetThreadResponse:
        self._refuse_if_closing(context)
        ident, native_id = _selected(request.thread, context)
        try:
            found = _control.get_thread(ident, native_id)
        except (InvalidArgument, ThreadNotFound) as error:
            _abort(context, error)
        return pb.GetThreadResponse(thread=to_proto(found))

    def StopThread(  # noqa: N802 - gRPC method name
        self, request: pb.StopThreadRequest, context: grpc.ServicerContext
    ) -> pb.StopThreadResponse:
        self._refuse_if_closing(context)
        ident, native_id = _selected(request.thread, context)
        if request.mode not in pb.StopMode.values():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown stop mode {request.mode}")
        force = request.mode == pb.STOP_MODE_FORCE
        if force and not self._allow_forced_stops:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "forced stops are disabled in this process (install(allow_forced_stops=False));"
                " nothing was stopped",
            )
        if request.expected_identity and not _IDENTITY_PATTERN.fullmatch(request.expected_identity):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed expected_identity {request.expected_identity[:40]!r}"
                " (use ThreadRecord.identity from a listing)",
            )
        try:
            result = _control.stop(
                ident,
                native_id,
                expected_identity=request.expected_identity,
                reason=request.reason,
                wait=request.wait_seconds,
                force=force,
                grace=request.grace_seconds,
                allow_main_thread=request.allow_main_thread,
                caller=caller_name(context),
                abandoned=lambda: self._caller_gone(context),
            )
        except (InvalidArgument, ThreadNotFound, IdentityMismatch, ProtectedThread) as error:
            _abort(context, error)
        return pb.StopThreadResponse(
            outcome=_OUTCOME[result.outcome],
            thread=to_proto(result.thread),
            already_requested=result.already_requested,
            waited_seconds=result.waited_seconds,
            forced=result.forced,
        )

    def StopAllThreads(  # noqa: N802 - gRPC method name
        self, request: pb.StopAllThreadsRequest, context: grpc.ServicerContext
    ) -> pb.StopAllThreadsResponse:
        self._refuse_if_closing(context)
        if request.force and not self._allow_forced_stops:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "forced stops are disabled in this process (install(allow_forced_stops=False));"
                " nothing was stopped",
            )
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
            _abort(context, error)
        return pb.StopAllThreadsResponse(
            threads=[
                pb.ThreadStopReport(
                    thread=to_proto(r.thread), outcome=_OUTCOME[r.outcome], forced=r.forced
                )
                for r in result.threads
            ],
            all_exited=result.all_exited,
            waited_seconds=result.waited_seconds,
        )

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
            watch = _Watch(request.include_stacks)
            while not cancelled.is_set() and not self._closing.is_set():
                yield watch.next_message(self._process)
                deadline = time.monotonic() + interval
                while not cancelled.is_set() and not self._closing.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    cancelled.wait(min(remaining, _ABANDON_CHECK_INTERVAL))
        finally:
            self._watch_slots.release()

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
            context.abort(grpc.StatusCode.UNAVAILABLE, "the control server is shutting down")


def _selected(
    selector: pb.ThreadSelector, context: grpc.ServicerContext
) -> tuple[int | None, int | None]:
    which = selector.WhichOneof("id")
    if which == "ident" and selector.ident > 0:
        return selector.ident, None
    if which == "native_id" and selector.native_id > 0:
        return None, selector.native_id
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "thread: set a non-zero ident or native_id")


def _abort(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    context.abort(_STATUS_OF[type(error)], str(error))
    raise AssertionError("context.abort returned")  # pragma: no cover


def to_proto(thread: ThreadSnapshot) -> pb.ThreadRecord:
    """The protobuf record of a snapshot."""
    record = pb.ThreadRecord(
        ident=thread.ident,
        native_id=thread.native_id,
        identity=thread.identity,
        name=thread.name,
        daemon=thread.daemon,
        main=thread.main,
        protected=thread.protected,
        cooperative=thread.cooperative,
        stop_state=_stop_state(thread),
        stop_reason=thread.stop_reason,
        stop_requested_at=thread.stop_requested_at,
        in_critical_section=thread.in_critical_section,
        forced_at=thread.forced_at,
        force_delivered_at=thread.force_delivered_at,
        activity=_ACTIVITY[thread.activity],
        activity_detail=thread.activity_detail,
        kernel_state=thread.kernel_state,
        partial=thread.partial,
    )
    if thread.blocked_in is not None:
        record.blocked_in.CopyFrom(_frame(thread.blocked_in))
    if thread.cpu_seconds is not None:
        record.cpu_seconds = thread.cpu_seconds
    if thread.stack is not None:
        record.stack.extend(_frame(f) for f in thread.stack.frames)
        record.stack_truncated = thread.stack.truncated
    return record


def _frame(frame: FrameInfo) -> pb.Frame:
    return pb.Frame(filename=frame.filename, line=frame.line, function=frame.function)


def _stop_state(thread: ThreadSnapshot) -> pb.StopState.ValueType:
    if thread.force is not ForceState.NONE:
        return _FORCE_STATE[thread.force]
    return pb.STOP_STATE_REQUESTED if thread.stop_requested else pb.STOP_STATE_NONE


class _Watch:
    """State of one WatchThreads call: the previous snapshot, to compute CPU
    shares and which threads started or exited."""

    def __init__(self, include_stacks: bool) -> None:
        self._include_stacks = include_stacks
        self._previous: dict[str, pb.ThreadRecord] = {}
        self._previous_time: float | None = None

    def next_message(self, process: pb.ProcessInfo) -> pb.WatchThreadsResponse:
        now = time.monotonic()
        sample_time = time.time()
        current: dict[str, pb.ThreadRecord] = {}
        for thread in snapshot_all(include_stacks=self._include_stacks):
            record = to_proto(thread)
            key = thread.identity or f"partial:{thread.ident}"
            before = self._previous.get(key)
            elapsed = None if self._previous_time is None else now - self._previous_time
            if (
                elapsed
                and before is not None
                and before.HasField("cpu_seconds")
                and (record.HasField("cpu_seconds"))
            ):
                record.cpu_share = max(0.0, record.cpu_seconds - before.cpu_seconds) / elapsed
            current[key] = record
        first = self._previous_time is None
        message = pb.WatchThreadsResponse(
            process=process,
            threads=current.values(),
            sample_time=sample_time,
            interval_seconds=0.0 if first else now - (self._previous_time or now),
            started=[] if first else [k for k in current if k not in self._previous],
            exited=[r for k, r in self._previous.items() if k not in current],
        )
        self._previous, self._previous_time = current, now
        return message
