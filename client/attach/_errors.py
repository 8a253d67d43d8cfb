"""Errors of attaching to a process, as subclasses of the client's errors.

Refusals (NotAttachable) are `Refused` and lack of permission
(PtraceNotPermitted) is `NotAllowed`, so they map to the CLI's existing exit
codes 5 and 7; AttachFailed is new (exit code 8): injection failed, the
deadline passed, the import inside the target failed, or the target exited.
"""

from __future__ import annotations

from threadctl.client._errors import ClientError, NotAllowed, Refused


class NotAttachable(Refused):
    """Nothing was injected, on purpose: not CPython, unsupported version,
    opted out, setuid/setgid, traced by another debugger, stopped, ..."""


class PtraceNotPermitted(NotAllowed):
    """The kernel does not let this user trace (inject into) that process."""


class AttachFailed(ClientError):
    """The attach was tried and did not work; the process keeps running."""


class TargetExited(AttachFailed):
    """The process exited while being attached to."""
