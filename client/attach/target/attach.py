"""The in-process half of `threadctl attach` and `threadctl detach` (runs
inside the target, see __init__).

Unlike one-shot operations, attach is meant to leave something behind: a
control server, and with it threadctl, grpcio and protobuf imported. Once
threadctl is imported, attach and detach go through its job API like every
other operation; a program that started its own server keeps it.

Full attach imports threadctl and its dependencies (grpcio, protobuf: C
extensions) from the CLI's environment, so:

- The process must run the CLI's CPython minor version and ABI flags.
- The CLI's directories are *appended* to sys.path, never prepended: every
  module the process can import from its own environment comes from there.
  They are removed again once threadctl is imported, so nothing the program
  imports later is taken from the CLI's environment.
- A grpcio or protobuf that the process already imported, or that its own
  environment would provide first, must be one threadctl supports; if not,
  nothing is imported and the refusal says why (one-shot mode still works).
"""

import contextlib
import importlib
import os
import re
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Protocol, TypedDict

    Json = dict[str, object]  # a JSON object: an answer, or a part of one
    # [module, floor, ceiling or None] (a list in the job: JSON has no tuples)
    Requirement = tuple[str, list[int], list[int] | None]

    class Params(TypedDict, total=False):
        """An attach or detach job's parameters (see client/attach/_env.py)."""

        op: str
        caller: str
        caller_uid: int
        python: list[int]  # the CLI's CPython: major, minor
        abiflags: str
        paths: list[str]
        packages: dict[str, str]  # package name -> its directory
        requirements: dict[str, Requirement]  # by distribution

    class JobAPI(Protocol):
        """threadctl._job_api, as imported in the process."""

        def run(self, params: Params) -> Json: ...


JOB_API_VERSION = 2
GEVENT = (
    "gevent has monkey-patched threading in this process: threadctl's gRPC server needs real"
    " threads and would deadlock on gevent's locks; nothing was attached. One-shot"
    " `--attach` commands work"
)


class AttachRefused(Exception):
    """A reason not to attach; `code` is the status the client maps to an exit code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def run(params: "Params") -> "Json":
    try:
        if params["op"] == "detach":
            return _detach(params)
        return _attach(params)
    except AttachRefused as refusal:
        return {"ok": False, "code": refusal.code, "error": str(refusal)}


IMPORT_SWITCH_INTERVAL = 0.00005
ONE_SHOT_HINT = (
    f"; one-shot mode (`threadctl list --pid {os.getpid()} --attach`) works on any version"
)


def _attach(params: "Params") -> "Json":
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        raise AttachRefused("FAILED_PRECONDITION", GEVENT)
    if "threadctl" not in sys.modules:
        _check_interpreter(params)
        _check_versions(params["requirements"], _loaded_version)
        _import_threadctl(params)
    return _job_api().run(params)


def _detach(params: "Params") -> "Json":
    if "threadctl" not in sys.modules:
        return {"ok": True, "result": {"outcome": "not_attached", "address": ""}}
    return _job_api().run(params)


def _job_api() -> "JobAPI":
    try:
        api = importlib.import_module("threadctl._job_api")
    except ImportError:
        api = None
    if api is None or getattr(api, "VERSION", None) != JOB_API_VERSION:
        version = getattr(sys.modules.get("threadctl"), "__version__", "?")
        raise AttachRefused(
            "FAILED_PRECONDITION",
            f"the process has its own threadctl {version}, which this threadctl cannot attach"
            f" to; call threadctl.install() in the program or upgrade it{ONE_SHOT_HINT}",
        )
    return api


def _check_interpreter(params: "Params") -> None:
    wanted = tuple(params["python"]), params["abiflags"]
    found = sys.version_info[:2], sys.abiflags
    if found != wanted:
        raise AttachRefused(
            "FAILED_PRECONDITION",
            f"the process runs CPython {_version_text(*found)}, threadctl's environment"
            f" {_version_text(*wanted)}: its grpcio and protobuf cannot load there{ONE_SHOT_HINT}",
        )


def _import_threadctl(params: "Params") -> None:
    added = [path for path in params["paths"] if path not in sys.path]
    sys.path.extend(added)
    finder = _PackageFinder(params["packages"])
    sys.meta_path.append(finder)
    # Importing does much file I/O, and after each read a busy thread keeps the
    # GIL for a whole switch interval (5 ms): the import took 2 s beside one
    # spinning thread. A short interval while importing brings it to ~0.1 s.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, IMPORT_SWITCH_INTERVAL))
    try:
        _check_versions(params["requirements"], _installed_version)
        importlib.import_module("threadctl")
        # The package imports its modules on first use: import what attach
        # runs (and, through it, grpcio and protobuf) while the paths are here.
        importlib.import_module("threadctl._job_api")
        importlib.import_module("threadctl._rpc._attach_target")
        importlib.import_module("threadctl._rpc._install")
    except AttachRefused:
        raise
    except Exception as error:  # noqa: BLE001 - any import error (a version check too) is the answer
        raise AttachRefused(
            "ATTACH_FAILED",
            f"importing threadctl inside the process failed: {type(error).__name__}:"
            f" {error}{ONE_SHOT_HINT}",
        ) from None
    finally:
        sys.setswitchinterval(interval)
        for path in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(path)
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)


class _PackageFinder:
    """Finds threadctl's own packages where the CLI has them (an editable
    install maps them to source directories that sys.path cannot express).
    Consulted last, so a threadctl of the process's own environment wins."""

    def __init__(self, packages: dict[str, str]) -> None:
        self.packages = packages

    def find_spec(
        self,
        name: str,
        path: "Sequence[str] | None" = None,
        target: "ModuleType | None" = None,
    ) -> "ModuleSpec | None":
        directory = self.packages.get(name)
        if directory is None:
            return None
        import importlib.util

        init = os.path.join(directory, "__init__.py")
        return importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[directory]
        )


def _check_versions(
    requirements: "dict[str, Requirement]",
    version_of: "Callable[[str, str], str | None]",
) -> None:
    for distribution, (module, low, high) in requirements.items():
        version = version_of(distribution, module)
        if version is None:
            continue
        number = _numbers(version)
        if number < tuple(low) or (high and number >= tuple(high)):
            supported = f">={'.'.join(map(str, low))}" + (
                f",<{'.'.join(map(str, high))}" if high else ""
            )
            raise AttachRefused(
                "FAILED_PRECONDITION",
                f"the process uses {distribution} {version}, threadctl needs"
                f" {distribution}{supported}{ONE_SHOT_HINT}",
            )


def _loaded_version(distribution: str, module: str) -> str | None:
    loaded = sys.modules.get(module)
    return None if loaded is None else str(getattr(loaded, "__version__", "0"))


def _installed_version(distribution: str, module: str) -> str | None:
    """The version `import` would load: the first distribution on sys.path."""
    import importlib.metadata

    loaded = _loaded_version(distribution, module)
    if loaded is not None:
        return loaded
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def _version_text(version: tuple[int, ...], abiflags: str) -> str:
    return ".".join(map(str, version)) + abiflags
