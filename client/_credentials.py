"""How the client proves who it is: the owner's token beside a Unix socket, a
bearer token, and TLS client certificates.

The token beside a socket (`<pid>.token`, mode 0600) is read automatically,
through the socket's directory as _local_socket opens it: a token is only
ever sent to a socket of its owner, and never to one someone else planted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from threadctl.client._local_socket import open_local_socket

MAX_RESPONSE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class TLS:
    """TLS settings for a TCP target: the CA that signed the server's
    certificate, and optionally this client's certificate and key (mTLS)."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = field(default=None, repr=False)
    server_name: str | None = None

    @classmethod
    def from_files(
        cls,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        server_name: str | None = None,
    ) -> TLS:
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return cls(read(ca), read(cert), read(key), server_name)


def socket_token(socket_path: Path) -> str | None:
    """The owner's token beside a Unix socket, None if there is none.

    Hazard: the checks of _local_socket are bound to what Client connects
    through; a caller that connects by path after this call is not.

    Raises:
        NotAllowed: the token file is unreadable, or it and the socket belong
            to different users, or either is a symlink.
        TargetUnavailable: there is no socket at `socket_path`.
    """
    with open_local_socket(socket_path) as local:
        return local.token


def open_channel(address: str, *, token: str | None, tls: TLS | None) -> grpc.Channel:
    """A channel to `address` that sends `token` with every call.

    Why a metadata interceptor and not gRPC's call credentials: those are
    sent only over a channel gRPC deems secure, which for a Unix socket means
    local credentials, and a local-credentials channel fails at once when the
    server drops its connection over the connection cap (_limits): with 250
    idle connections held open against the socket, 5 of 5 health checks
    through one failed with UNAVAILABLE, where a plain channel's succeeded
    (tests/test_bad_input.py, test_many_idle_connections_do_not_starve_the_server).
    """
    # A listing with stacks of thousands of threads exceeds gRPC's default
    # 4 MiB receive limit (10,000 threads: 4.8 MB).
    options: list[tuple[str, int | str]] = [("grpc.max_receive_message_length", MAX_RESPONSE_BYTES)]
    if tls is not None:
        credentials = grpc.ssl_channel_credentials(tls.ca, tls.key, tls.cert)
        if tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        channel = grpc.secure_channel(address, credentials, options)
    else:
        channel = grpc.insecure_channel(address, options)
    if token is None:
        return channel
    metadata = (("authorization", f"Bearer {token}"), ("x-threadctl-uid", str(os.geteuid())))
    return grpc.intercept_channel(channel, _AddMetadata(metadata))


class _AddMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _with_metadata(self, details: Any) -> Any:
        return _CallDetails(
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._with_metadata(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._with_metadata(details), request)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any
