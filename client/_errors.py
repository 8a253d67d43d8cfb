"""Errors the client raises instead of raw grpc.RpcError.

Each says what went wrong in a sentence a person can act on; the CLI maps
each class to one exit code.
"""

from __future__ import annotations

from threadctl.errors import InvalidArgument, ThreadctlError, ThreadNotFound

__all__ = [
    "ClientError",
    "InvalidArgument",
    "NotAllowed",
    "Refused",
    "ServerError",
    "TargetNotFound",
    "TargetUnavailable",
    "ThreadNotFound",
]


class ClientError(ThreadctlError):
    """Base class of errors raised by threadctl.client."""


class TargetNotFound(ClientError):
    """No threadctl server could be located (no socket for that PID, none running)."""


class TargetUnavailable(ClientError):
    """The server could not be reached, did not answer in time, or is shutting down."""


class Refused(ClientError):
    """The server refused the action: protected thread, or the id now names
    another thread (identity precondition failed), or an unsupported mode."""


class NotAllowed(ClientError):
    """The caller is not authenticated, or may not perform this action."""


class ServerError(ClientError):
    """The server failed in a way it did not explain (a bug: see its log)."""
