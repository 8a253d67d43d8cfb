"""Who may do what: credentials, roles, and deciding a caller's role.

Two roles: READ (list, show, watch) and CONTROL (stop, which includes
READ); health and reflection need no credentials (see _interceptors).
Callers prove who they are with:

- on the Unix socket: the per-process token from the 0600 file beside the
  socket (defence in depth: the 0700 directory already keeps other users out,
  the token still does if its mode was loosened by mistake). Holders of it
  get CONTROL: only the owning user and root can read it. The uid a client
  sends beside it (x-threadctl-uid) is only claimed: gRPC gives the server
  no peer credentials for Unix sockets, so the audit log says "claimed".
- on TCP (opt-in, TLS): a client certificate whose subject is granted a role
  (mTLS), or a bearer token granted a role.

A certificate's subject is parsed as the distinguished name it is (_dn),
never split on commas: an escaped comma inside a value once read as a
separator and gave a READ certificate CONTROL (issue 18.2). A grant by
common name alone matches only a subject with exactly one CN, the one gRPC
also reports as `x509_common_name`; a certificate with several CNs matches
only a grant of its whole subject. Subject alternative names grant nothing.

Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import enum
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from threadctl._rpc._dn import DN, common_names, parse_dn


class Role(enum.IntEnum):
    """What a caller may do; CONTROL includes READ."""

    READ = 1
    CONTROL = 2


@dataclass(frozen=True)
class TokenGrant:
    """A bearer token for TCP callers: `name` appears in the audit log, never the token."""

    name: str
    token: str = field(repr=False)
    role: Role = Role.READ

    def __post_init__(self) -> None:
        if len(self.token) < 16:
            raise ValueError(f"token {self.name!r} is too short (at least 16 characters)")


@dataclass(frozen=True)
class TLSConfig:
    """TLS for the TCP listener.

    Args:
        cert_file, key_file: the server's certificate chain and private key (PEM).
        client_ca_file: CA that signs client certificates; setting it turns on
            mutual TLS (clients must present a certificate it signed).
        client_subjects: role per client certificate subject, e.g.
            {"CN=ops-console,O=Acme": Role.CONTROL}: the whole subject in
            RFC 4514 syntax, most specific part first, as `openssl x509
            -noout -subject -nameopt RFC2253` prints it (escape a comma in
            a value as `\\,`); or a common name alone ("ops-console"), which
            matches only certificates with exactly that one CN. A whole
            subject's grant wins over a common name's. Subjects not listed
            get no role.

    Raises:
        ValueError: a subject with "=" that is not a distinguished name.
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_subjects: Mapping[str, Role] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for granted in self.client_subjects:
            if "=" in granted:
                parse_dn(granted)  # ValueError names the subject


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: how to name it in the audit log, and its role."""

    name: str
    role: Role


@dataclass(frozen=True)
class _Grants:
    """Who gets which role on TCP: tokens, certificate subjects, common names."""

    tokens: tuple[TokenGrant, ...]
    by_subject: Mapping[DN, Role]
    by_common_name: Mapping[str, Role]

    @classmethod
    def of(cls, tokens: Iterable[TokenGrant], tls: TLSConfig | None) -> _Grants:
        subjects = dict(tls.client_subjects) if tls else {}
        return cls(
            tuple(tokens),
            {parse_dn(granted): role for granted, role in subjects.items() if "=" in granted},
            {granted: role for granted, role in subjects.items() if "=" not in granted},
        )


class Authenticator:
    """Decides the caller of each RPC from its transport and metadata.

    The grants can be replaced while serving (replace_grants: token and
    certificate rotation); each call reads one table, old or new, whole.
    """

    def __init__(
        self, unix_token: str, grants: Iterable[TokenGrant], tls: TLSConfig | None
    ) -> None:
        self._unix_token = unix_token
        self._table = _Grants.of(grants, tls)

    def replace_grants(self, grants: Iterable[TokenGrant], tls: TLSConfig | None) -> None:
        """Grant roles from now on to these tokens and `tls`'s subjects only."""
        self._table = _Grants.of(grants, tls)

    def caller(
        self,
        peer: str,
        metadata: Sequence[tuple[str, str | bytes]],
        auth_context: Mapping[str, Sequence[bytes]],
    ) -> Caller | None:
        """The authenticated caller, or None if the credentials prove nothing."""
        token = bearer_token(metadata)
        if peer.startswith("unix:"):
            if token is not None and hmac.compare_digest(token, self._unix_token):
                # The uid is what the client says: gRPC gives the server no
                # peer credentials for a Unix socket, so it cannot be checked.
                uid = _metadata_value(metadata, "x-threadctl-uid") or ""
                claimed = uid if re.fullmatch(r"[0-9]{1,10}", uid) else "?"
                return Caller(f"unix socket (owner's token, claimed uid {claimed})", Role.CONTROL)
            return None
        certificate = self._certificate_caller(auth_context)
        if certificate is not None:
            return certificate
        if token is not None:
            # Compare with every grant, so timing does not tell which matched.
            matches = [g for g in self._table.tokens if hmac.compare_digest(token, g.token)]
            if matches:
                return Caller(f"token {matches[0].name}", matches[0].role)
        return None

    def may_admit(self, metadata: Sequence[tuple[str, str | bytes]]) -> bool:
        """Whether a call with `metadata` could be admitted, decided before it
        takes a worker (gRPC gives no peer then, so the full check is caller()).

        True if its bearer token is one we know, or if client certificates
        are granted roles (mutual TLS verified the certificate in the
        handshake; its subject is checked in caller()). Hazard: with such
        grants, a caller without credentials on the Unix socket passes this
        check too; only a loosened socket directory lets one connect there.
        """
        table = self._table
        if table.by_subject or table.by_common_name:
            return True
        token = bearer_token(metadata)
        if token is None:
            return False
        known = [hmac.compare_digest(token, self._unix_token)]
        known += [hmac.compare_digest(token, grant.token) for grant in table.tokens]
        return any(known)

    def _certificate_caller(self, auth_context: Mapping[str, Sequence[bytes]]) -> Caller | None:
        """The caller a verified client certificate names, if its subject is granted."""
        subjects = auth_context.get("x509_subject")
        if not subjects:
            return None
        subject = subjects[0].decode("utf-8", "replace")
        try:
            dn = parse_dn(subject)
        except ValueError:
            return None  # not what OpenSSL prints: trust nothing in it
        table = self._table
        role = table.by_subject.get(dn)
        names = common_names(dn)
        reported = auth_context.get("x509_common_name") or [b""]
        if role is None and len(names) == 1 and names[0].encode() == reported[0]:
            role = table.by_common_name.get(names[0])
        return None if role is None else Caller(f"certificate {subject}", role)


def new_process_token() -> str:
    return secrets.token_urlsafe(32)


def bearer_token(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    value = _metadata_value(metadata, "authorization")
    if value is None or not value.lower().startswith("bearer "):
        return None
    return value[len("bearer ") :].strip()


def _metadata_value(metadata: Sequence[tuple[str, str | bytes]], key: str) -> str | None:
    for name, value in metadata:
        if name == key:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None
