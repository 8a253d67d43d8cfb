"""What every CLI command talks to: a Backend, by gRPC or by one-shot job.

`Client` (the gRPC client of a running control server) is one backend;
`OneShot` (client/attach: each call a job injected into a process that never
imported threadctl) is the other, which `--attach` picks. Both return the
client's model types, built from the proto's shape by the same code, so a
command renders and maps exit codes once, and a new command gets `--attach`
by implementing one method here.
"""

from __future__ import annotations

from typing import Protocol, TypedDict

from threadctl.client._errors import InvalidArgument
from threadctl.client._models import StopAllResult, StopResult, ThreadInfo, ThreadList
from threadctl.client._task_models import TaskList

DEFAULT_TIMEOUT = 10.0  # seconds per call, of either backend


class Backend(Protocol):
    def list_threads(self, *, include_stacks: bool = False) -> ThreadList: ...

    def get_thread(
        self,
        *,
        ident: int | None = None,
        native_id: int | None = None,
        tid_or_ident: int | None = None,
        name: str | None = None,
    ) -> ThreadInfo: ...

    def stop_thread(
        self,
        *,
        ident: int | None = None,
        native_id: int | None = None,
        tid_or_ident: int | None = None,
        name: str | None = None,
        expected_identity: str = "",
        reason: str = "",
        wait: float = 0.0,
        force: bool = False,
        grace: float = 0.0,
        allow_main_thread: bool = False,
    ) -> StopResult: ...

    def stop_all_threads(
        self,
        *,
        grace: float = 5.0,
        force: bool = False,
        wait: float = 1.0,
        reason: str = "",
        include_main_thread: bool = False,
    ) -> StopAllResult: ...

    def list_tasks(self, *, include_stacks: bool = False, thread: int = 0) -> TaskList: ...

    def close(self) -> None: ...


class SelectorFields(TypedDict, total=False):
    """A ThreadSelector's fields, as keyword arguments (one of them is set)."""

    ident: int
    native_id: int
    tid_or_ident: int
    name: str


def selector_fields(
    ident: int | None, native_id: int | None, tid_or_ident: int | None, name: str | None
) -> SelectorFields:
    """The ThreadSelector fields naming one thread (exactly one must be given)."""
    given = SelectorFields()
    if ident is not None:
        given["ident"] = ident
    if native_id is not None:
        given["native_id"] = native_id
    if tid_or_ident is not None:
        given["tid_or_ident"] = tid_or_ident
    if name is not None:
        given["name"] = name
    if len(given) != 1:
        raise InvalidArgument("name the thread by exactly one of ident, native_id, TID or name")
    return given
