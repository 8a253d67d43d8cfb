"""Who may do what: credentials, roles, and deciding a caller's role.

Two roles: READ (list, show, watch, health, reflection) and CONTROL (stop,
which includes READ). Callers prove who they are with:

- on the Unix socket: the per-process token from the 0600 file beside the
  socket (defence in depth: the 0700 directory already keeps other users out,
  the token still does if its mode was loosened by mistake). Holders of it
  get CONTROL: only the owning user and root can read it.
- on TCP (opt-in, TLS): a client certificate whose subject is granted a role
  (mTLS), or a bearer token granted a role.

Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


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
            {"CN=ops-console": Role.CONTROL}; a subject may be given as its
            common name alone ("ops-console"). Subjects not listed get no role.
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_subjects: Mapping[str, Role] = field(default_factory=dict)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: how to name it in the audit log, and its role."""

    name: str
    role: Role


class Authenticator:
    """Decides the caller of each RPC from its transport and metadata."""

    def __init__(
        self, unix_token: str, grants: Iterable[TokenGrant], tls: TLSConfig | None
    ) -> None:
        self._unix_token = unix_token
        self._grants = tuple(grants)
        self._subjects = dict(tls.client_subjects) if tls else {}

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
                uid = _metadata_value(metadata, "x-threadctl-uid") or "?"
                return Caller(f"unix socket (owner's token, uid {uid[:12]})", Role.CONTROL)
            return None
        subject = _certificate_subject(auth_context)
        if subject is not None:
            for granted, role in self._subjects.items():
                if granted in (subject, _common_name(subject)):
                    return Caller(f"certificate {subject}", role)
        if token is not None:
            # Compare with every grant, so timing does not tell which matched.
            matches = [g for g in self._grants if hmac.compare_digest(token, g.token)]
            if matches:
                return Caller(f"token {matches[0].name}", matches[0].role)
        return None


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


def _certificate_subject(auth_context: Mapping[str, Sequence[bytes]]) -> str | None:
    values = auth_context.get("x509_subject") or auth_context.get("x509_common_name")
    if not values:
        return None
    subject = values[0].decode("utf-8", "replace")
    return subject if "=" in subject else f"CN={subject}"


def _common_name(subject: str) -> str:
    for part in subject.split(","):
        key, _, value = part.strip().partition("=")
        if key.upper() == "CN":
            return value
    return subject
