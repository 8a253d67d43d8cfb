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
import os
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path

import grpc

from threadctl._rpc._auth import TLSConfig, TokenGrant

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


def add_tcp_port(server: grpc.Server, tcp: str, certificates: Certificates | None) -> str:
    """Bind the TCP listener; returns the address actually bound (port 0 picks one)."""
    host = tcp.rsplit(":", 1)[0]
    if certificates is None:
        logger.warning(
            "threadctl: INSECURE plaintext TCP listener on %s: tokens travel in clear text;"
            " use only on a trusted network, for tests",
            tcp,
        )
        port = server.add_insecure_port(tcp)
    else:
        port = server.add_secure_port(tcp, certificates.server_credentials())
    if port == 0:
        raise OSError(f"cannot listen on {tcp}")
    return f"{host}:{port}"


class Certificates:
    """The TCP listener's certificate files, read again when they change.

    gRPC asks for the certificate configuration at each new TLS handshake
    (dynamic server credentials); the answer is "unchanged" unless one of the
    files' stat (inode, size, mtime) differs from when they were last read,
    or replace() gave other files. A file that cannot be read, or a new
    configuration gRPC cannot use, keeps the previous one serving, with a
    warning. Connections already open keep the certificate they began with.
    Whether client certificates are required is fixed when the port is
    bound (a gRPC limit): replace() refuses to turn mutual TLS on or off.
    """

    def __init__(self, tls: TLSConfig) -> None:
        self._lock = threading.Lock()
        self._tls = tls
        self._stamps = self._stat()
        self._initial = self._configuration(tls)

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self._fetch,  # type: ignore[arg-type]  # gRPC takes None as "unchanged"; typeshed does not
            require_client_authentication=self._requires_client,
        )

    @property
    def _requires_client(self) -> bool:
        return self._tls.client_ca_file is not None

    def replace(self, tls: TLSConfig) -> None:
        """Serve `tls`'s files from the next handshake on (reading them now).

        Raises:
            ValueError: it would turn client certificates on or off.
            OSError: a file cannot be read.
        """
        if (tls.client_ca_file is not None) != self._requires_client:
            raise ValueError(
                "client certificates cannot be turned on or off while serving (gRPC fixes it"
                " when the port is bound): restart the server for that"
            )
        self._configuration(tls)  # fails here, not at the next handshake
        with self._lock:
            self._tls, self._stamps = tls, ()

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's callback, at each handshake: None means unchanged."""
        try:
            with self._lock:
                stamps = self._stat()
                if stamps == self._stamps:
                    return None
                configuration = self._configuration(self._tls)
                self._stamps = stamps
                return configuration
        except Exception as error:  # noqa: BLE001 - never into gRPC's handshake
            logger.warning("threadctl: TLS files not reloaded, the previous ones serve: %s", error)
            return None

    def _files(self, tls: TLSConfig) -> list[str]:
        return [tls.cert_file, tls.key_file, *([tls.client_ca_file] if tls.client_ca_file else [])]

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        def stamp(path: str) -> tuple[int, int, int]:
            info = os.stat(path)
            return (info.st_ino, info.st_size, info.st_mtime_ns)

        return tuple(stamp(path) for path in self._files(self._tls))

    @staticmethod
    def _configuration(tls: TLSConfig) -> grpc.ServerCertificateConfiguration:
        """`tls`'s files, read. A key that does not match its certificate
        (files caught halfway through a copy) raises ssl.SSLError here, and
        the previous pair goes on serving."""
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            tls.cert_file, tls.key_file
        )
        key, cert = Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes()
        client_ca = Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca)
