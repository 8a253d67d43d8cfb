"""Request bytes that do not parse: refused with INVALID_ARGUMENT by the
handler, never on grpcio's own path.

A deserializer that raises makes grpcio answer INTERNAL, to anyone, and log
a traceback; for a streaming request it is worse: grpcio's "Exception
deserializing request!" abort, sent from its poller thread while the handler
still iterates, left the call's state behind in grpcio 1.66 to 1.85. One
undecodable message to server reflection (public: no credentials needed)
kept about 16 kB, and the server never finished stopping, so the host's
close() and its exit waited forever (issue 18.1). So the interceptor gives
every handler a deserializer that never raises (tolerant): a request that
does not parse arrives as UNDECODABLE, and the handler ends the call, after
authenticating the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

# Stands in for a request whose bytes do not parse (see tolerant).
UNDECODABLE = object()


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer`, but a request that does not parse becomes UNDECODABLE
    instead of an exception, so the handler decides its status after
    authenticating the caller."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:  # corrupt or truncated bytes, a string that is not UTF-8
            return UNDECODABLE
        except Exception:  # noqa: BLE001 - anything raised here would take grpcio's path
            return UNDECODABLE

    return deserialize


def decoded(requests: Iterator[Any], undecodable: list[bool]) -> Iterator[Any]:
    """The messages of a request stream up to the first that did not parse;
    that one ends the stream, and is recorded in `undecodable` so the call
    then ends with INVALID_ARGUMENT."""
    for request in requests:
        if request is UNDECODABLE:
            undecodable.append(True)
            return
        yield request


def refuse_undecodable(request: Any, context: grpc.ServicerContext) -> None:
    if request is UNDECODABLE:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "the request is not a valid protobuf message for this method (corrupt or truncated"
            " bytes, or a string field that is not UTF-8)",
        )
