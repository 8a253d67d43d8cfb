"""Interceptors: authentication and authorisation before every handler, and a
fault barrier around it.

Authentication needs the TLS peer (client certificate subject), which gRPC
gives only to the servicer context, so the interceptor wraps each method
handler instead of deciding in intercept_service alone.

But a call whose metadata carries no token we know, on a server that grants
no certificate, is refused in intercept_service already, by a handler that
reads no request: a unary handler would first wait for the request message
on a worker, and 40 such calls that never sent one held all 32 call slots
(issue 18.3). Calls served without credentials (reflection, health) are
limited to _limits.MAX_PUBLIC_CALLS at once, and run as request-streaming
handlers so the limit is checked before anything waits for a message.

The fault barrier turns an unexpected exception into INTERNAL with a generic
message: its text (paths, internals) goes to the host's log, never to the
client. A request whose bytes do not parse is refused with INVALID_ARGUMENT
after authentication (see _decoding; reflection's requests too).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from threadctl import _audit, _limits
from threadctl._rpc._auth import Authenticator, Caller, Role
from threadctl._rpc._decoding import UNDECODABLE, decoded, refuse_undecodable, tolerant

if TYPE_CHECKING:
    from typing import TypeAlias

    _Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]  # generic in typeshed only

logger = logging.getLogger("threadctl")

_current = threading.local()
# The methods that need the control role, and the audit log's name for each.
CONTROL_METHODS = {
    "/threadctl.v1.ThreadControl/StopThread": "stop",
    "/threadctl.v1.ThreadControl/StopAllThreads": "stop_all",
    "/threadctl.v1.ThreadControl/CancelTask": "cancel",
}


# Served without credentials, as standard tools expect: server reflection
# tells the API's schema (as public as the .proto), health only SERVING or
# NOT_SERVING (a Kubernetes gRPC probe or grpc_health_probe sends no token).
# Neither tells anything of the process.
PUBLIC_PREFIXES = ("/grpc.reflection.", "/grpc.health.v1.Health/")


def required_role(method: str) -> Role:
    return Role.CONTROL if method in CONTROL_METHODS else Role.READ


class ServerInterceptor(grpc.ServerInterceptor):
    """Checks who calls and what they may do, then runs the handler behind a
    fault barrier."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator
        self._public_slots = threading.BoundedSemaphore(_limits.MAX_PUBLIC_CALLS)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], _Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if method.startswith(PUBLIC_PREFIXES):
            # No credentials, but requests decoded here (never on grpcio's
            # path), and a slot taken before any message is waited for.
            return _limited(_request_streaming(_wrap(handler, _public)), self._public_slots)
        metadata = tuple(handler_call_details.invocation_metadata or ())
        if not self._authenticator.may_admit(metadata):
            return _REFUSE_UNAUTHENTICATED  # before any worker waits for a message
        needed = required_role(method)

        def admit(context: grpc.ServicerContext) -> None:
            caller = self._authenticator.caller(
                context.peer(),
                metadata,
                context.auth_context(),  # type: ignore[arg-type]  # lists of bytes, not bytes
            )
            if caller is None:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, _UNAUTHENTICATED)
            elif caller.role < needed:
                message = (
                    f"{caller.name} may only read; {method.rsplit('/', 1)[-1]} needs the"
                    " control role"
                )
                # Audited: the caller is known (unlike one without credentials).
                _audit.refused(action=CONTROL_METHODS[method], caller=caller.name, error=message)
                context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
            remember_caller(context, caller)

        return _wrap(handler, admit)


_UNAUTHENTICATED = (
    "no valid credentials: the owner's token (read automatically by the threadctl CLI), a"
    " bearer token, or a client certificate"
)


def _refuse_unauthenticated(requests: Iterator[Any], context: grpc.ServicerContext) -> None:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, _UNAUTHENTICATED)


# Request-streaming, so gRPC runs it at once instead of first waiting on a
# worker for a request message that may never come. The client cannot tell.
_REFUSE_UNAUTHENTICATED: _Handler = grpc.stream_unary_rpc_method_handler(_refuse_unauthenticated)


def _public(context: grpc.ServicerContext) -> None:
    """Admits every caller (reflection, health)."""


def _request_streaming(handler: _Handler) -> _Handler:
    """`handler` as a request-streaming handler that reads the one request
    itself: gRPC runs such a handler at once, so _limited decides before a
    worker waits for a message that may never come. The client cannot tell."""
    unary = handler.unary_unary or handler.unary_stream
    if unary is None:
        return handler
    build = (
        grpc.stream_unary_rpc_method_handler
        if handler.unary_unary is not None
        else grpc.stream_stream_rpc_method_handler
    )
    return build(
        lambda requests, context: unary(_single(requests, context), context),
        handler.request_deserializer,
        handler.response_serializer,
    )


def _single(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
    for request in requests:
        return request  # a unary method's one message (gRPC's client sends no more)
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call sent no request message")


def _limited(handler: _Handler, slots: threading.BoundedSemaphore) -> _Handler:
    """`handler` (request-streaming), refused with RESOURCE_EXHAUSTED while
    all `slots` are taken: a caller without credentials who opens streams
    and sends nothing holds that many call slots at most."""

    def take(context: grpc.ServicerContext) -> None:
        if not slots.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"at most {_limits.MAX_PUBLIC_CALLS} calls without credentials (reflection,"
                " health) at once; try again later",
            )

    if handler.stream_unary is not None:
        inner_unary = handler.stream_unary

        def limited_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            take(context)
            try:
                return inner_unary(requests, context)
            finally:
                slots.release()

        return grpc.stream_unary_rpc_method_handler(
            limited_unary, handler.request_deserializer, handler.response_serializer
        )
    inner = handler.stream_stream
    if inner is None:  # _request_streaming made every handler request-streaming
        raise TypeError("not a request-streaming handler")

    def limited(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        take(context)
        try:
            yield from inner(requests, context)
        finally:
            slots.release()

    return grpc.stream_stream_rpc_method_handler(
        limited, handler.request_deserializer, handler.response_serializer
    )


def remember_caller(context: grpc.ServicerContext, caller: Caller) -> None:
    """Record the authenticated caller of the call this thread serves, for the
    audit log (a handler runs on the thread that admitted it)."""
    _current.caller = caller
    _current.context = context


def caller_name(context: grpc.ServicerContext) -> str:
    """How the audit log names the caller of `context`'s call."""
    if getattr(_current, "context", None) is context:
        caller: Caller = _current.caller
        return caller.name
    return context.peer()


def _wrap(handler: _Handler, admit: Callable[[grpc.ServicerContext], None]) -> _Handler:
    if handler.unary_unary is not None:
        inner_unary = handler.unary_unary

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            admit(context)
            refuse_undecodable(request, context)
            return _barrier(lambda: inner_unary(request, context), context)

        return grpc.unary_unary_rpc_method_handler(
            unary, tolerant(handler.request_deserializer), handler.response_serializer
        )
    if handler.unary_stream is not None:
        inner_stream = handler.unary_stream

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            admit(context)
            refuse_undecodable(request, context)
            iterator = _barrier(lambda: iter(inner_stream(request, context)), context)
            while True:
                try:
                    item = _barrier(lambda: next(iterator), context)
                except StopIteration:
                    return
                yield item

        return grpc.unary_stream_rpc_method_handler(
            stream, tolerant(handler.request_deserializer), handler.response_serializer
        )
    # Request-streaming: reflection's bidirectional stream (no method served
    # here streams requests into one response).
    inner_bidi = handler.stream_stream
    if inner_bidi is None:
        raise TypeError("no method served here streams requests into one response")

    def bidi(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        admit(context)
        undecodable: list[bool] = []
        # Reflection: a library's own handler, fed only messages that parsed.
        yield from inner_bidi(decoded(requests, undecodable), context)
        if undecodable:
            refuse_undecodable(UNDECODABLE, context)

    return grpc.stream_stream_rpc_method_handler(
        bidi, tolerant(handler.request_deserializer), handler.response_serializer
    )


def _barrier(call: Callable[[], Any], context: grpc.ServicerContext) -> Any:
    """Run `call`; an unexpected exception becomes INTERNAL with a generic message."""
    try:
        return call()
    except StopIteration:
        raise
    except Exception:
        if _aborted(context):
            raise  # context.abort() raises a bare Exception: the status is already set
        logger.exception("threadctl: unexpected error in a control-server handler")
        context.abort(
            grpc.StatusCode.INTERNAL, "internal error in the threadctl server (see the host's log)"
        )


def _aborted(context: grpc.ServicerContext) -> bool:
    code = context.code()  # type: ignore[attr-defined]  # in grpcio, not in typeshed's stub
    return code is not None and code != grpc.StatusCode.OK
