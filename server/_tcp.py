"""The opt-in TCP listener: TLS with client certificates or tokens, or
plaintext only behind an option whose name says it is insecure.

Whoever reaches the control server can stop threads of a production process,
so a TCP listener must authenticate every caller: with mutual TLS (client
certificates signed by `client_ca_file`), or with TLS plus bearer tokens.
Not both: grpcio's server credentials either require a client certificate
of every caller or request none (there is no "request, do not require"), so
a token caller without a certificate would fail the handshake.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import grpc

from threadctl._auth import TLSConfig, TokenGrant

logger = logging.getLogger("threadctl")


def check_tcp_settings(
    tcp: str | None,
    tls: TLSConfig | None,
    tokens: Sequence[TokenGrant],
    insecure_plaintext_tcp: bool,
) -> None:
    """Refuse TCP settings that would let callers in unauthenticated.

    Raises:
        ValueError: with what to change.
    """
    if tcp is None:
        if tls is not None or insecure_plaintext_tcp:
            raise ValueError("tls and insecure_plaintext_tcp only apply with tcp='host:port'")
        return
    if tls is None and not insecure_plaintext_tcp:
        raise ValueError(
            "a TCP listener needs TLS: pass tls=TLSConfig(...) (with client_ca_file for mutual"
            " TLS, or with tokens); insecure_plaintext_tcp=True exists for tests only"
        )
    if tls is not None and insecure_plaintext_tcp:
        raise ValueError("choose tls or insecure_plaintext_tcp, not both")
    if (tls is None or tls.client_ca_file is None) and not tokens:
        raise ValueError(
            "nobody could authenticate on TCP: give tokens=[TokenGrant(...)], or client"
            " certificates (TLSConfig(client_ca_file=..., client_subjects=...))"
        )
    if tls is not None and tls.client_ca_file is not None and tokens:
        raise ValueError(
            "client certificates (client_ca_file) and tokens cannot be combined: grpcio can"
            " only require a certificate of every TCP caller or ask for none, so a caller with"
            " a token and no certificate would fail the TLS handshake; grant roles to"
            " certificate subjects (client_subjects), or use tokens with TLSConfig(cert, key)"
        )


def add_tcp_port(server: grpc.Server, tcp: str, tls: TLSConfig | None) -> str:
    """Bind the TCP listener; returns the address actually bound (port 0 picks one)."""
    host = tcp.rsplit(":", 1)[0]
    if tls is None:
        logger.warning(
            "threadctl: INSECURE plaintext TCP listener on %s: tokens travel in clear text;"
            " use only on a trusted network, for tests",
            tcp,
        )
        port = server.add_insecure_port(tcp)
    else:
        client_ca = Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None
        credentials = grpc.ssl_server_credentials(
            [(Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
        port = server.add_secure_port(tcp, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {tcp}")
    return f"{host}:{port}"
