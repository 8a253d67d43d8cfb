"""Whether the gRPC stubs must be generated: the one rule, for the build
backend (threadctl_build) and setup.py. Standard library only, so it can be
asked without setuptools."""

from __future__ import annotations

from pathlib import Path

GENERATOR = "grpcio-tools==1.66.2"
PROTO_ROOT = Path("proto")


def stubs_needed(root: Path = Path()) -> bool:
    """Whether a .proto under `root`/proto has no stub newer than it."""
    for proto in (root / PROTO_ROOT).rglob("*.proto"):
        stub = proto.with_name(f"{proto.stem}_pb2.py")
        if not stub.exists() or stub.stat().st_mtime < proto.stat().st_mtime:
            return True
    return False


def generator_requires() -> list[str]:
    """What generating the stubs needs, if this source tree must."""
    return [GENERATOR] if stubs_needed() else []
