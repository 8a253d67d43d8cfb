"""Keep gRPC's C core off the host's stderr, unless the host chose its settings.

Imported by _install before anything imports grpc: importing this module
imports grpc. Why it must be that early, measured with a server that forks
and a TLS handshake that fails (issue 13.8):

- Unconfigured, the core writes to fd 2 itself (absl logging, before any
  `absl::InitializeLog`): per `fork()` "fork_posix.cc ... Other threads are
  currently calling into gRPC, skipping fork() handlers" (INFO), per failed
  handshake "ssl_transport_security.cc ... Handshake failed" (INFO on 1.85.3,
  ERROR on 1.66.2, which also prints "WARNING: All log messages before
  absl::InitializeLog() is called are written to STDERR" once). Python's
  logging never sees these lines.
- The only switch is the environment variable `GRPC_VERBOSITY` (`NONE` is
  silent; `ERROR` still lets 1.66.2's handshake errors through), read once:
  grpcio 1.85.3 reads it when `grpc` is imported, 1.66.2 when the core first
  initialises (the first channel or server). Set later, it changes nothing,
  and grpcio exposes no call that changes the level afterwards (1.85.3's
  cygrpc exports no absl setter). `GRPC_VERBOSITY` sets absl's minimum level
  for the whole process, gRPC's logs and the host's own gRPC alike.
- `GRPC_ENABLE_FORK_SUPPORT=0` would also drop the fork lines, but it changes
  how gRPC behaves across fork (a server in a forked child then aborts, see
  _install._check_fork_support): not ours to change.

So: if the host set `GRPC_VERBOSITY` or `GRPC_TRACE`, or imported grpc before
threadctl (then gRPC is the host's, with the host's settings), nothing is
touched. Otherwise `GRPC_VERBOSITY=NONE` is set just for `import grpc` and one
throwaway channel (the first core initialisation, for 1.66; about 8 ms), then
removed again, so the host's child processes never inherit it.

Hazards: the environment is process-wide. While the variable is set (the
import, tens of milliseconds) a process that another thread starts would
inherit it, and glibc's getenv in another thread (C code: time zones,
locales, libraries) races with setenv and unsetenv, which may move or free
the array it reads. So the variable is set only while the process runs a
single thread (counted in /proc/self/task, so threads started from C count):
under `python -m threadctl` always, and for `install()` called before the
program starts threads. Later (`install()` in a threaded program, `threadctl
attach`) nothing is touched and gRPC logs as it would by default; such a
host quiets it with GRPC_VERBOSITY=NONE in its environment. The core's errors
are silent too (threadctl's own failures still raise).
"""

from __future__ import annotations

import os
import sys

# The host's own choice of gRPC logging: present (even empty) means "theirs".
HOST_SETTINGS = ("GRPC_VERBOSITY", "GRPC_TRACE")


def _load_grpc_quietly() -> None:
    if "grpc" in sys.modules or any(name in os.environ for name in HOST_SETTINGS):
        return  # the host's gRPC, or the host's choice
    if _thread_count() != 1:
        return  # not safe to touch the environment (see the docstring)
    os.environ["GRPC_VERBOSITY"] = "NONE"
    try:
        import grpc

        # Never connects: a channel only initialises the core (and shuts it
        # down again on close), which is when 1.66 reads its settings.
        grpc.insecure_channel(f"unix:{os.devnull}").close()
    finally:
        os.environ.pop("GRPC_VERBOSITY", None)


def _thread_count() -> int:
    """Threads of this process, including those Python does not know about."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0  # unknown: not safe to touch the environment


_load_grpc_quietly()
