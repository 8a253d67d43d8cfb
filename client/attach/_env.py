"""What a full attach needs from this environment, and whether the target fits.

A full attach imports threadctl, grpcio and protobuf into the target from the
environment threadctl runs in (see _attach_job.py for how, without shadowing
the target's modules), so the target must run the same CPython minor version
and ABI, in the same mount namespace (the paths must mean the same files).
The version range of grpcio and protobuf comes from threadctl's own metadata
(pyproject.toml), so the check inside the target never disagrees with it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
import sysconfig
from pathlib import Path
from typing import Any

import threadctl
import threadctl.v1
from threadctl.client.attach._errors import NotAttachable
from threadctl.client.attach._inspect import Target

# threadctl's packages the target imports (an editable install maps them to
# source directories, so they are named one by one).
_PACKAGES = {"threadctl": threadctl, "threadctl.v1": threadctl.v1}


def require_same_interpreter(target: Target) -> None:
    if (target.python, target.abiflags) != (sys.version_info[:2], sys.abiflags):
        raise NotAttachable(
            f"process {target.pid} runs CPython {target.version_text} and threadctl runs"
            f" {sys.version_info[0]}.{sys.version_info[1]}{sys.abiflags}: a full attach loads"
            " threadctl's grpcio and protobuf into the process, which needs the same version;"
            f" use one-shot mode instead (`threadctl list --pid {target.pid} --attach`)"
        )
    if target.root:
        raise NotAttachable(
            f"process {target.pid} runs in another mount namespace (a container?), where"
            " threadctl's packages are not visible; run threadctl inside it, or use one-shot mode"
        )


def environment() -> dict[str, Any]:
    """Where the job finds threadctl and its dependencies in this environment."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # Found, not imported: importing grpc and protobuf here took ~80 ms of every attach.
    paths.add(str(_package_file("grpc").parents[1]))
    paths.add(str(_package_file("google.protobuf").parents[2]))
    packages = {name: str(Path(module.__file__ or "").parent) for name, module in _PACKAGES.items()}
    return {
        "python": list(sys.version_info[:2]),
        "abiflags": sys.abiflags,
        "paths": sorted(paths),
        "packages": packages,
        "requirements": requirements(),
    }


def _package_file(name: str) -> Path:
    """The __init__.py of installed package `name`, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise NotAttachable(f"{name} is not installed beside threadctl")
    return Path(spec.origin)


def requirements() -> dict[str, list[Any]]:
    """{distribution: [module, floor, ceiling]} for grpcio and protobuf, from
    threadctl's own metadata (pyproject.toml) so the two never disagree."""
    wanted = {"grpcio": "grpc", "protobuf": "google.protobuf"}
    found: dict[str, list[Any]] = {name: [module, [0], None] for name, module in wanted.items()}
    for requirement in importlib.metadata.requires("threadctl") or []:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*([^;]*)", requirement.strip())
        if match is None or match.group(1).lower() not in wanted:
            continue
        for spec in match.group(2).split(","):
            op, number = spec.strip()[:2], spec.strip().lstrip("<>=!~ ")
            bound = [int(part) for part in re.findall(r"\d+", number)]
            if op == ">=":
                found[match.group(1).lower()][1] = bound
            elif op.startswith("<"):
                found[match.group(1).lower()][2] = bound
    return found
