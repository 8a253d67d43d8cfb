"""Interceptors: authentication and authorisation before every handler, and a
fault barrier around it.

Authentication needs the TLS peer (client certificate subject), which gRPC
gives only to the servicer context, so the interceptor wraps each method
handler instead of deciding in intercept_service alone. The fault barrier
turns an unexpected exception into INTERNAL with a generic message: its text
(paths, internals) goes to the host's log, never to the client. A request
whose bytes do not parse is refused with INVALID_ARGUMENT after authentication
(gRPC itself would answer INTERNAL, to anyone, and log a traceback).

Server reflection is public, but its request bytes are decoded here too: an
undecodable message on grpcio's own path for a streaming request (its
"Exception deserializing request!" abort, sent from the poller thread while
the handler still iterates) left the call's state behind in grpcio 1.66 to
1.85: about 16 kB per call, and the server never finished stopping, so the
host's close() waited forever (measured, issue 18). Here such a message ends
the request stream and the call with INVALID_ARGUMENT, sent by the handler.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from threadctl._auth import Authenticator, Caller, Role

logger = logging.getLogger("threadctl")

_current = threading.local()
CONTROL_METHODS = frozenset(
    {"/threadctl.v1.ThreadControl/StopThread", "/threadctl.v1.ThreadControl/StopAllThreads"}
)


# Server reflection tells the API's schema (as public as the .proto), nothing
# of the process: served without credentials, so tools can discover the API.
PUBLIC_PREFIX = "/grpc.reflection."


def required_role(method: str) -> Role:
    return Role.CONTROL if method in CONTROL_METHODS else Role.READ


class ServerInterceptor(grpc.ServerInterceptor):
    """Checks who calls and what they may do, then runs the handler behind a
    fault barrier."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method  # type: ignore[attr-defined]
        if method.startswith(PUBLIC_PREFIX):
            # The API's schema, as public as the .proto: no credentials, but
            # its requests are decoded here, never on grpcio's path.
            return _wrap(handler, _public)
        metadata = tuple(handler_call_details.invocation_metadata or ())  # type: ignore[attr-defined]
        needed = required_role(method)

        def admit(context: grpc.ServicerContext) -> None:
            caller = self._authenticator.caller(context.peer(), metadata, context.auth_context())
            if caller is None:
                context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "no valid credentials: the owner's token (read automatically by the"
                    " threadctl CLI), a bearer token, or a client certificate",
                )
            elif caller.role < needed:
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{caller.name} may only read; {method.rsplit('/', 1)[-1]} needs the"
                    " control role",
                )
            remember_caller(context, caller)

        return _wrap(handler, admit)


def _public(context: grpc.ServicerContext) -> None:
    """Admits every caller (server reflection)."""


def remember_caller(context: grpc.ServicerContext, caller: Caller) -> None:
    """Record the authenticated caller of the call this thread serves, for the
    audit log (a handler runs on the thread that admitted it)."""
    _current.caller = caller
    _current.context = context


def caller_name(context: grpc.ServicerContext) -> str:
    """How the audit log names the caller of `context`'s call."""
    if getattr(_current, "context", None) is context:
        return _current.caller.name
    return context.peer()


def _wrap(
    handler: grpc.RpcMethodHandler, admit: Callable[[grpc.ServicerContext], None]
) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None:
        inner_unary = handler.unary_unary

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            admit(context)
            _refuse_undecodable(request, context)
            return _barrier(lambda: inner_unary(request, context), context)

        return grpc.unary_unary_rpc_method_handler(
            unary, _tolerant(handler.request_deserializer), handler.response_serializer
        )
    if handler.unary_stream is not None:
        inner_stream = handler.unary_stream

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            admit(context)
            _refuse_undecodable(request, context)
            iterator = _barrier(lambda: iter(inner_stream(request, context)), context)
            while True:
                try:
                    item = _barrier(lambda: next(iterator), context)
                except StopIteration:
                    return
                yield item

        return grpc.unary_stream_rpc_method_handler(
            stream, _tolerant(handler.request_deserializer), handler.response_serializer
        )
    if handler.stream_unary is not None:
        inner_client_stream = handler.stream_unary

        def client_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            admit(context)
            undecodable: list[bool] = []
            response = _barrier(
                lambda: inner_client_stream(_decoded(requests, undecodable), context), context
            )
            if undecodable:
                _refuse_undecodable(_UNDECODABLE, context)
            return response

        return grpc.stream_unary_rpc_method_handler(
            client_stream, _tolerant(handler.request_deserializer), handler.response_serializer
        )
    inner_bidi = handler.stream_stream

    def bidi(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        admit(context)
        undecodable: list[bool] = []
        # Reflection: a library's own handler, fed only messages that parsed.
        yield from inner_bidi(_decoded(requests, undecodable), context)
        if undecodable:
            _refuse_undecodable(_UNDECODABLE, context)

    return grpc.stream_stream_rpc_method_handler(
        bidi, _tolerant(handler.request_deserializer), handler.response_serializer
    )


# Stands in for a request whose bytes do not parse (see _tolerant).
_UNDECODABLE = object()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer`, but a request that does not parse becomes _UNDECODABLE
    instead of an exception, so the handler decides its status after
    authenticating the caller."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:  # corrupt or truncated bytes, a string that is not UTF-8
            return _UNDECODABLE
        except Exception:  # noqa: BLE001 - anything raised here would take grpcio's path
            return _UNDECODABLE

    return deserialize


def _decoded(requests: Iterator[Any], undecodable: list[bool]) -> Iterator[Any]:
    """The messages of a request stream up to the first that did not parse;
    that one ends the stream, and is recorded in `undecodable` so the call
    then ends with INVALID_ARGUMENT."""
    for request in requests:
        if request is _UNDECODABLE:
            undecodable.append(True)
            return
        yield request


def _refuse_undecodable(request: Any, context: grpc.ServicerContext) -> None:
    if request is _UNDECODABLE:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "the request is not a valid protobuf message for this method (corrupt or truncated"
            " bytes, or a string field that is not UTF-8)",
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
    code = context.code()  # type: ignore[attr-defined]
    return code is not None and code != grpc.StatusCode.OK
