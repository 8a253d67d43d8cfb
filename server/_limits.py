"""What a caller without credentials can hold: connections, their lifetime,
and call slots.

Authentication happens per call, after a connection is made, so without
limits a caller with no credentials could take what the host and its
authorised callers need (issue 18.3, measured with grpcio 1.85):
- 1,100 bare TCP connects kept 1,100 of the host's file descriptors open
  (gRPC waits 120 s for a handshake by default), past a 1,024 limit: the
  host's own open() failed.
- 40 HTTP/2 streams that sent headers and never a message held all 32 call
  slots (a unary handler waits for its message on a worker), and authorised
  calls got "Concurrent RPC limit exceeded".

The answers, each in one place:
- gRPC core channel args (server_options): a handshake (TLS and the HTTP/2
  SETTINGS frame) must finish within HANDSHAKE_TIMEOUT_SECONDS; a
  connection with no call for CONNECTION_IDLE_SECONDS is closed; every
  connection is closed after CONNECTION_AGE_SECONDS, its calls in flight
  given CONNECTION_AGE_GRACE_SECONDS, longer than the longest call the API
  allows (a stop's grace plus its wait, 2 h); and each listener takes at
  most max_connections() connections at once, closing the others as soon
  as they are accepted. Each arg was checked against a bare server on
  grpcio 1.66.2 and 1.85.3 (a bare connect closed after the handshake
  timeout, an idle connection after the idle time, any after age + grace,
  the connection past the cap at once).
- The interceptor refuses a call without a known token before any worker
  waits for its message (_interceptors), and public calls (reflection,
  health) are limited to MAX_PUBLIC_CALLS at once, so authorised callers
  keep the rest of the MAX_CONCURRENT_RPCS slots.

Hazards: the connection cap is per listener, so callers without credentials
on TCP can fill the TCP listener's (until each of their connections times
out) but never the Unix socket's; and a `threadctl top` left running for
hours has its stream ended with its connection (the CLI reopens it).
"""

from __future__ import annotations

import resource

HANDSHAKE_TIMEOUT_SECONDS = 10.0
CONNECTION_IDLE_SECONDS = 30.0
CONNECTION_AGE_SECONDS = 30 * 60.0
CONNECTION_AGE_GRACE_SECONDS = 2 * 3600.0 + 60.0
# Connections per listener at most; less if the host may open few files.
MAX_CONNECTIONS = 64
# Calls without credentials at once (reflection, health).
MAX_PUBLIC_CALLS = 4


def max_connections() -> int:
    """MAX_CONNECTIONS, or an eighth of the host's file descriptor limit if
    that is less: two listeners then take a quarter of it at most."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, soft // 8))


def server_options() -> list[tuple[str, int]]:
    """The gRPC core channel args that bound connections (read when called,
    so a test host may lower the values first)."""

    def ms(seconds: float) -> int:
        return int(seconds * 1000)

    return [
        ("grpc.server_handshake_timeout_ms", ms(HANDSHAKE_TIMEOUT_SECONDS)),
        ("grpc.max_connection_idle_ms", ms(CONNECTION_IDLE_SECONDS)),
        ("grpc.max_connection_age_ms", ms(CONNECTION_AGE_SECONDS)),
        ("grpc.max_connection_age_grace_ms", ms(CONNECTION_AGE_GRACE_SECONDS)),
        ("grpc.max_allowed_incoming_connections", max_connections()),
    ]
