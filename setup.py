"""Build glue: generate the gRPC stubs from proto/ before packaging (when
they are missing or older than the .proto: the sdist ships them, see
_build/threadctl_build.py).

Why here and not committed: generated code must match the pinned generator
(pyproject.toml, build-system.requires), so the build produces it. The output
lands beside the .proto (proto/threadctl/v1/), which is the `threadctl.v1`
package, so protoc's absolute imports (`from threadctl.v1 import ...`) are right
by construction. Works for `pip install .` and `pip install -e .`.

It also compiles one small native library, built like a C extension (so pip
builds it in place for editable installs) but never imported: it links no
Python symbol and looks them up at run time in the interpreter it is loaded
into. It holds the landing check (server/_core/native/landing.c), which lets
a forced stop decide where it lands and inject in one step (see
server/_core/landing.py), and the attach agent (client/attach/_agent/agent.c),
which `threadctl attach` loads into a running process. `optional=True`:
without a C compiler threadctl still installs; attach then says the agent is
missing, and forced stops use a pure-Python landing check with a small race
under heavy load (logged once).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from threadctl_stubs import stubs_needed  # _build/, on the path during a build

ROOT = Path(__file__).resolve().parent
PROTO_ROOT = ROOT / "proto"


def generate_stubs() -> None:
    """Run protoc via `python -m grpc_tools.protoc`, which adds the include path
    of protobuf's well-known types (calling grpc_tools.protoc.main() does not)."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={PROTO_ROOT}",
            f"--pyi_out={PROTO_ROOT}",
            f"--grpc_python_out={PROTO_ROOT}",
            *protos,
        ],
        check=True,
        cwd=ROOT,
    )


class BuildPyWithStubs(build_py):
    def run(self) -> None:
        if stubs_needed(ROOT):
            generate_stubs()
        super().run()


class SdistWithStubs(sdist):
    """The sdist ships the stubs: installing from it needs no grpcio-tools."""

    def run(self) -> None:
        if stubs_needed(ROOT):
            generate_stubs()
        super().run()


# One native library, never imported: the landing check forced stops use in
# this process (server/_native.py loads it with ctypes), and the attach agent
# (a copy of the same file is what `threadctl attach` loads into a target).
NATIVE = Extension(
    "threadctl._nativelib",
    sources=["server/_core/native/landing.c", "client/attach/_agent/agent.c"],
    extra_compile_args=["-fvisibility=hidden", "-Wall"],
    extra_link_args=["-pthread"],
    optional=True,
)

setup(cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithStubs}, ext_modules=[NATIVE])
