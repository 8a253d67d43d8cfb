"""How the client proves who it is: the owner's token beside a Unix socket, a
bearer token, and TLS client certificates.

The token beside a socket (`<pid>.token`, mode 0600) is read automatically,
through the socket's directory as _local_socket opens it: a token is only
ever sent to a socket of its owner, and never to one someone else planted.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from threadctl.client._errors import InvalidArgument
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

    The token travels as gRPC's own call credentials (a bearer token, and the
    caller's uid as claimed, see threadctl._auth), which gRPC sends only over
    a channel it considers secure: TLS, or local credentials for a Unix
    socket or a loopback TCP address (a plaintext listener,
    insecure_plaintext_tcp, is reachable with a token only there).

    Raises:
        InvalidArgument: a token for a plaintext TCP address that is not
            loopback.
    """
    # A listing with stacks of thousands of threads exceeds gRPC's default
    # 4 MiB receive limit (10,000 threads: 4.8 MB).
    options = [("grpc.max_receive_message_length", MAX_RESPONSE_BYTES)]
    if tls is not None:
        credentials = grpc.ssl_channel_credentials(tls.ca, tls.key, tls.cert)
        if tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
    elif address.startswith("unix:"):
        credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.UDS)
    elif _is_loopback(address):
        credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    elif token is None:
        return grpc.insecure_channel(address, options)
    else:
        raise InvalidArgument(
            f"a token is never sent in clear text to {address}: give --tls-ca (a plaintext"
            " listener is reachable with a token only on a loopback address)"
        )
    if token is not None:
        credentials = grpc.composite_channel_credentials(
            credentials,
            grpc.access_token_call_credentials(token),
            grpc.metadata_call_credentials(_ClaimedUid(), name="threadctl-uid"),
        )
    return grpc.secure_channel(address, credentials, options)


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    for prefix in ("ipv4:", "ipv6:", "dns:///", "dns:"):
        host = host.removeprefix(prefix)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _ClaimedUid(grpc.AuthMetadataPlugin):
    """Sends the caller's uid beside the token (x-threadctl-uid): the server
    cannot see who is at the other end of a Unix socket, so the audit log
    records it as claimed."""

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        callback((("x-threadctl-uid", str(os.geteuid())),), None)
