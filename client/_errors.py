"""Errors the client raises instead of raw grpc.RpcError.

Each says what went wrong in a sentence a person can act on; the CLI maps
each class to one exit code. Both backends (gRPC and one-shot jobs) turn an
answer's status into these by the same table, ERROR_OF_STATUS.
"""

from __future__ import annotations

from threadctl import errors

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


class ClientError(errors.ThreadctlError):
    """Base class of errors raised by threadctl.client."""


class InvalidArgument(ClientError, errors.InvalidArgument):
    """The request can never succeed as written (the server, or the CLI, said so)."""


class ThreadNotFound(ClientError, errors.ThreadNotFound):
    """No live thread of the target matches."""


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


# gRPC status name -> the error a caller gets (others: ServerError).
ERROR_OF_STATUS: dict[str, type[ClientError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "NOT_FOUND": ThreadNotFound,
    "FAILED_PRECONDITION": Refused,
    "UNIMPLEMENTED": Refused,
    "UNAUTHENTICATED": NotAllowed,
    "PERMISSION_DENIED": NotAllowed,
    "UNAVAILABLE": TargetUnavailable,
    "DEADLINE_EXCEEDED": TargetUnavailable,
}


def error_for_status(status: str, message: str) -> ClientError:
    return ERROR_OF_STATUS.get(status, ServerError)(message)
