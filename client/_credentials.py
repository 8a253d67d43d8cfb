"""How the client proves who it is: the owner's token beside a Unix socket, a
bearer token, and TLS client certificates.

The token beside a socket (`<pid>.token`, mode 0600) is read automatically,
but only after checking that the socket and the token file belong to the
same user: a token is never sent to a socket someone else planted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from threadctl import _paths
from threadctl.client._errors import NotAllowed

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

    Raises:
        NotAllowed: the token file is unreadable, or it and the socket belong
            to different users.
    """
    token_path = _paths.token_path_for_socket(socket_path)
    try:
        socket_owner = os.stat(socket_path).st_uid
        token_owner = os.stat(token_path).st_uid
    except FileNotFoundError:
        return None
    except PermissionError:
        raise NotAllowed(f"cannot reach {socket_path}: permission denied") from None
    if socket_owner != token_owner:
        raise NotAllowed(
            f"{socket_path} belongs to uid {socket_owner} but {token_path} to uid {token_owner};"
            " not sending the token"
        )
    try:
        return token_path.read_text().strip()
    except PermissionError:
        raise NotAllowed(
            f"cannot read {token_path}: it belongs to uid {token_owner} (run as that user or root)"
        ) from None


def check_socket_owner(socket_path: Path) -> None:
    """Before sending a token of ours to a Unix socket: it must be ours (or we root)."""
    owner = os.stat(socket_path).st_uid
    if owner != os.geteuid() and os.geteuid() != 0:
        raise NotAllowed(f"{socket_path} belongs to uid {owner}, not to you; not sending a token")


def open_channel(address: str, *, token: str | None, tls: TLS | None) -> grpc.Channel:
    """A channel to `address` that sends `token` with every call."""
    # A listing with stacks of thousands of threads exceeds gRPC's default
    # 4 MiB receive limit (10,000 threads: 4.8 MB).
    options = [("grpc.max_receive_message_length", MAX_RESPONSE_BYTES)]
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
    ) -> Iterator[Any]:
        return continuation(self._with_metadata(details), request)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any
