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
server/_core/landing.py), the one-thread frame lookup
(server/_core/native/thread_frame.c: one thread's frame without
sys._current_frames() building every thread's), and the attach agent
(client/attach/_agent/agent.c), which `threadctl attach` loads into a running
process.

Because the library holds no Python ABI, it is named `_nativelib.so` (no
interpreter tag) and the wheel is tagged `py3-none-<platform>`: one wheel per
platform serves every CPython, and `auditwheel repair` turns it into the
manylinux wheel PyPI accepts (README, "Releasing").

Without a C compiler the build fails, loudly (pip shows a failed build's
output, never a successful one's): threadctl without its native library has
no attach and forced stops with a small race under heavy load. Setting
THREADCTL_WITHOUT_NATIVE=1 builds that reduced, pure wheel on purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import CCompilerError, ExecError, PlatformError
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


WITHOUT_NATIVE = "THREADCTL_WITHOUT_NATIVE"

NO_COMPILER = f"""
threadctl: its native library could not be built ({{error}}).
Without it `threadctl attach` and `--attach` are unavailable, and forced stops
check where they land in Python, which a heavily loaded machine can race.
Install a C compiler (for example `apt-get install gcc`) and retry, or set
{WITHOUT_NATIVE}=1 to install threadctl without it on purpose.
"""


class BuildNativeLibrary(build_ext):
    """Builds the native library under one name for every interpreter, and
    turns a missing compiler into the message above instead of a traceback."""

    def get_ext_filename(self, fullname: str) -> str:
        return os.path.join(*fullname.split(".")) + ".so"

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, PlatformError) as error:  # compile, link, no gcc
            sys.exit(NO_COMPILER.format(error=error))


class PlatformWheel(bdist_wheel):
    """`py3-none-<platform>`: the library binds to the CPython that loads it
    (it looks the C API up at run time), so one build serves 3.10 to 3.13."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


# One native library, never imported: the landing check forced stops use and
# the one-thread frame lookup, in this process (server/_native.py loads it
# with ctypes), and the attach agent (a copy of the same file is what
# `threadctl attach` loads into a target).
NATIVE = Extension(
    "threadctl._nativelib",
    sources=[
        "server/_core/native/landing.c",
        "server/_core/native/thread_frame.c",
        "client/attach/_agent/agent.c",
    ],
    extra_compile_args=["-fvisibility=hidden", "-Wall"],
    extra_link_args=["-pthread"],
)

setup(
    cmdclass={
        "build_py": BuildPyWithStubs,
        "sdist": SdistWithStubs,
        "build_ext": BuildNativeLibrary,
        "bdist_wheel": PlatformWheel,
    },
    ext_modules=[] if os.environ.get(WITHOUT_NATIVE) == "1" else [NATIVE],
)
