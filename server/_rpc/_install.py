"""install(): start the control server inside the host process, with one call.

The server listens on a Unix socket in a per-user 0700 directory, named by
PID so clients can find the process by PID. Everything it runs is on daemon
threads named `threadctl-*` that are protected from stop requests, and it
installs no signal handlers.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

# First, before grpc is imported: gRPC's core decides then how it logs.
from threadctl._rpc import _grpc_logging  # noqa: F401  # isort: skip
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from threadctl import _force, _gevent, _limits, _os_names, _paths
from threadctl._fields import process_fields
from threadctl._registry import registry
from threadctl._rpc import _reflection
from threadctl._rpc._auth import Authenticator, TLSConfig, TokenGrant, new_process_token
from threadctl._rpc._executor import DaemonThreadPool
from threadctl._rpc._interceptors import ServerInterceptor
from threadctl._rpc._servicer import ThreadControlServicer
from threadctl._rpc._shutdown import stop_within_bound
from threadctl._rpc._tcp import Certificates, add_tcp_port, check_tcp_settings
from threadctl._signals import SignalStopper
from threadctl._socket_files import (
    answers_http2,
    claim_socket_path,
    remove_stale_sockets,
    why_unbindable,
)
from threadctl.errors import AlreadyInstalled, ServerStartFailed, ThreadctlError
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

logger = logging.getLogger("threadctl")

# Requests are tiny; refuse anything big before it is parsed.
MAX_MESSAGE_BYTES = 64 * 1024
# More concurrent calls than this get RESOURCE_EXHAUSTED instead of queueing
# behind long --wait calls.
MAX_CONCURRENT_RPCS = 32
# How long close() waits for the RPC workers to end once the server stopped
# (they serve no call by then, so they end at once). Waited for, not left to
# end on their own: under gevent's PatchGuard, close() runs just before the
# patch, and a worker still ending after it met gevent's locks in its exit
# ("Exception ignored in thread started by", CI, 1 run in several).
_WORKERS_EXIT_SECONDS = 2.0

_install_lock = threading.Lock()
_installed: ControlServer | None = None
# The PID of the process that last started a server. A child forked from it
# inherits the value (gRPC's state came over the fork, its threads did not),
# so a different PID here means "forked after gRPC ran" (install() checks).
_served_in_pid: int | None = None
# The first grpcio seen to serve in a forked child without harm (1.80.0 to
# 1.85.3 did; 1.66.2, 1.75.1 and 1.78.2 did not, see _check_fork_support).
_GRPC_SERVES_AFTER_FORK = (1, 80)
# How long a server started in a forked child gets to answer a connection.
_AFTER_FORK_PROBE_SECONDS = 5.0
_AFTER_FORK = "threadctl cannot serve in a process forked from one that ran its server"


class ControlServer:
    """A running control server. Close it with close() or use it as a context manager."""

    def __init__(
        self,
        socket_path: Path,
        *,
        allow_forced_stops: bool = True,
        signal_stopper: SignalStopper | None = None,
        tcp: str | None = None,
        tls: TLSConfig | None = None,
        tokens: Sequence[TokenGrant] = (),
        name_os_threads: bool = False,
    ) -> None:
        self._signal_stopper = signal_stopper
        self._name_os_threads = name_os_threads
        self.socket_path = socket_path
        self.token_path = _paths.token_path_for_socket(socket_path)
        self.address = f"unix:{socket_path}"
        self._tcp = tcp
        self._tokens, self._tls = tuple(tokens), tls
        self._certificates = Certificates(tls) if tcp is not None and tls is not None else None
        self.tcp_address: str | None = None
        self._token = new_process_token()
        self.pid = os.getpid()
        self._closing = threading.Event()
        self._close_lock = threading.Lock()
        self._listening = False  # a port is bound (see _abandon)
        # Closes the server before gevent patches threading under it.
        self._gevent_guard = _gevent.PatchGuard(lambda: self.close(None), self.pid)
        self._authenticator = Authenticator(self._token, tokens, tls)
        self._pool = DaemonThreadPool(
            MAX_CONCURRENT_RPCS, name_prefix="threadctl-rpc", start=_os_names.start_own
        )
        self._server = grpc.server(
            self._pool,  # type: ignore[arg-type]  # duck-typed: grpc calls only submit()
            interceptors=[ServerInterceptor(self._authenticator)],
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
                *_limits.server_options(),  # what callers without credentials can hold
            ],
        )
        process = pb.ProcessInfo(**process_fields())
        pb_grpc.add_ThreadControlServicer_to_server(
            ThreadControlServicer(process, self._closing, allow_forced_stops=allow_forced_stops),
            self._server,
        )
        # Standard services, so grpcurl, Kubernetes probes and other languages'
        # clients work without the .proto at hand.
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        service_name = pb.DESCRIPTOR.services_by_name["ThreadControl"].full_name
        for name in ("", service_name):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        _reflection.enable(
            (pb.DESCRIPTOR, health_pb2.DESCRIPTOR),
            (service_name, health.SERVICE_NAME),
            self._server,
        )

    def _start(self) -> None:
        """Create the token file and the socket, listen, serve.

        Raises:
            SocketInUse: a live server answers on the path.
            ServerStartFailed: a file or listener could not be made (OSError,
                or gRPC's RuntimeError); nothing of ours is left behind.
        """
        claim_socket_path(self.socket_path)
        step = "write the token file"
        try:
            _paths.write_private_file(self.token_path, self._token)
            step = f"listen on {self.address}"
            self._server.add_insecure_port(self.address)  # RuntimeError if refused
            self._listening = True
            os.chmod(self.socket_path, 0o600)
            if self._tcp is not None:
                step = f"listen on {self._tcp}"
                self.tcp_address = add_tcp_port(self._server, self._tcp, self._certificates)
            step = "start serving"
            before = set(threading.enumerate())
            self._server.start()
        except (OSError, RuntimeError) as error:
            reason = self._why(step, error)
            self._abandon()
            raise ServerStartFailed(f"threadctl cannot {step}: {reason}") from error
        except BaseException:
            self._abandon()
            raise
        _protect_grpc_threads(before)
        # None, not 0: grpc's stop(0) starts a thread to cancel the calls in
        # flight, which CPython 3.12 refuses at interpreter exit (RuntimeError,
        # and the socket stays behind); stop(None) cancels them at once.
        atexit.register(self.close, None)
        self._gevent_guard.arm()

    def _why(self, step: str, error: OSError | RuntimeError) -> str:
        """The reason for a failed start, in words; gRPC's own RuntimeError
        says only "Failed to bind" (the details go to its log, which is off)."""
        if isinstance(error, OSError):
            return str(error)
        if step == f"listen on {self.address}":
            return why_unbindable(self.socket_path) or str(error)
        if self._tcp is not None and step.endswith(self._tcp):
            return "the address is in use, or not one of this host"
        return str(error)

    def _abandon(self) -> None:
        """After a failed start: close gRPC's listeners, remove our files.

        gRPC closes a listener only when a started server stops: an unstarted
        one keeps its listening sockets open even once garbage-collected
        (measured, 1.66.2 and 1.85.3), which would keep a TCP port taken. So
        a server that listens is started and stopped at once (its serving
        thread ends with the stop).
        """
        if self._listening:
            with contextlib.suppress(ValueError, RuntimeError):  # start() may be what failed
                self._server.start()
            stop_within_bound(self._server, self._pool, None)
        self._pool.shutdown(wait=_WORKERS_EXIT_SECONDS)
        for path in (self.socket_path, self.token_path):
            path.unlink(missing_ok=True)

    def reload_credentials(
        self, *, tls: TLSConfig | None = None, tokens: Iterable[TokenGrant] | None = None
    ) -> None:
        """Rotate the TCP listener's credentials without a restart: the
        certificate files and subject grants of `tls`, the bearer `tokens`
        (None keeps what is there). New connections and calls use them at
        once; a token no longer granted is refused from its next call.
        Certificate files that change in place are read again by themselves
        at the next handshake (see threadctl._rpc._tcp.Certificates), so this
        call is only needed for other files, grants or tokens.

        Raises:
            ValueError: no TCP listener, a combination install() refuses, or
                turning client certificates on or off (needs a restart).
            OSError: a certificate file cannot be read, or does not match
                its key; nothing changed.
        """
        if self._tcp is None:
            raise ValueError("this server has no TCP listener: there is nothing to rotate")
        new_tls = self._tls if tls is None else tls
        new_tokens = self._tokens if tokens is None else tuple(tokens)
        check_tcp_settings(self._tcp, new_tls, new_tokens, insecure_plaintext_tcp=new_tls is None)
        if (new_tls is None) != (self._tls is None):
            raise ValueError("TLS cannot be turned on or off while serving: restart the server")
        if self._certificates is not None and new_tls is not None:
            self._certificates.replace(new_tls)
        self._authenticator.replace_grants(new_tokens, new_tls)
        self._tls, self._tokens = new_tls, new_tokens

    def close(self, grace: float | None = 1.0) -> None:
        """Stop serving, end waiting calls, remove the socket. Idempotent.

        Args:
            grace: seconds in-flight calls get to finish before they are
                cancelled (None: cancel them at once); waits inside calls end
                at once either way.
        """
        global _installed
        with self._close_lock:
            if self._closing.is_set():
                return
            self._closing.set()
        atexit.unregister(self.close)
        self._gevent_guard.disarm()
        if self._signal_stopper is not None:
            self._signal_stopper.uninstall()
        if self._name_os_threads:
            _os_names.stop_naming_new_threads()
        if os.getpid() == self.pid:
            self._health.enter_graceful_shutdown()
            stop_within_bound(self._server, self._pool, grace)  # never waits forever
            self._pool.shutdown(wait=_WORKERS_EXIT_SECONDS)
            for path in (self.socket_path, self.token_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        with _install_lock:
            if _installed is self:
                _installed = None

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closing.is_set() else "serving"
        return f"<ControlServer {self.address} {state}>"


def install(
    *,
    socket_path: str | os.PathLike[str] | None = None,
    exist_ok: bool = False,
    allow_forced_stops: bool = True,
    stop_on_signals: Iterable[int] = (),
    grace: float = 5.0,
    force_after_grace: bool = False,
    tcp: str | None = None,
    tls: TLSConfig | None = None,
    tokens: Iterable[TokenGrant] = (),
    insecure_plaintext_tcp: bool = False,
    name_os_threads: bool = False,
) -> ControlServer:
    """Start the control server in this process.

    Args:
        socket_path: where to listen; default `<runtime dir>/<pid>.sock`
            (`$XDG_RUNTIME_DIR/threadctl` or `/tmp/threadctl-<uid>`), which is
            where `threadctl --pid PID` looks. If that directory is unsafe
            (another user's, a symlink, open to others), a private fallback
            beside it (`<runtime dir>-<random>`, found by clients too) is used
            and a warning logged. A custom path's directory must exist; keep
            it private, since whoever can connect can stop threads.
        exist_ok: if a server is already running in this process, return it
            instead of raising AlreadyInstalled.
        allow_forced_stops: False refuses every forced stop request
            (FAILED_PRECONDITION), leaving only cooperative stops.
        stop_on_signals: signals (e.g. SIGINT, SIGTERM) that stop every thread
            gracefully (see threadctl._signals for how this chains to the
            handlers already in place). Off by default: without it threadctl
            installs no signal handler. Needs the main thread.
        grace: with stop_on_signals, seconds the threads get to exit by
            themselves after the first signal.
        force_after_grace: with stop_on_signals, force-stop the threads still
            alive after the grace period (a second signal always does).
        tcp: also listen on TCP, "host:port" (port 0 picks a free one; see
            `.tcp_address`). Needs `tls`, and callers authenticate with a
            client certificate (mutual TLS) or a bearer token from `tokens`.
        tls: the TCP listener's TLS settings (TLSConfig).
        tokens: bearer tokens accepted on TCP, each with a role (TokenGrant).
        insecure_plaintext_tcp: allow TCP without TLS (tokens in clear text).
            For tests on a trusted network only; logs a warning.
        name_os_threads: give every Python thread its name at OS level too
            (what `top -H` and `ps -L` show, 15 bytes), now and as threads
            start, until close() (see threadctl._os_names). threadctl's own
            threads are named always.

    Returns:
        The running server: `.address`, `.socket_path`, `.close()`.

    Raises:
        AlreadyInstalled: a server runs already and `exist_ok` is False.
        SocketInUse: a live server already answers on the socket path.
        InvalidArgument: the socket path is over 107 bytes (Unix sockets
            allow no more); nothing is created.
        ServerStartFailed: the token file, the socket or the TCP listener
            could not be made (e.g. a full disk); what was made is removed.
        UnsafeRuntimeDirectory: neither the default directory nor a fallback
            is private to us, and none can be created (python -m threadctl
            then runs the program without the server).
        ThreadctlError: this process was forked from one that ran a server,
            and gRPC cannot serve in it (it depends on the grpcio version).
        UnsupportedRuntime: gevent has monkey-patched threading here (see
            threadctl._gevent; a server installed before the patch closes
            itself, with a warning, when the patch begins).
    """
    global _installed, _served_in_pid
    _gevent.refuse_if_patched(os.getpid())
    forked = _served_in_pid not in (None, os.getpid())
    with _install_lock:
        if _installed is not None and _installed.pid == os.getpid():
            if exist_ok:
                return _installed
            raise AlreadyInstalled(f"threadctl is already serving on {_installed.address}")
        if socket_path is None:
            directory, passed_over = _paths.choose_runtime_dir()
            if passed_over is not None:
                logger.warning("threadctl: %s; serving from %s instead", passed_over, directory)
            remove_stale_sockets(directory)
            path = _paths.socket_path_for_pid(os.getpid(), directory)
        else:
            path = Path(socket_path)
        _paths.check_socket_path_length(path)
        grants = tuple(tokens)
        check_tcp_settings(tcp, tls, grants, insecure_plaintext_tcp)
        if forked:
            _check_fork_support()
        stopper = None
        if stop_on_signals:
            stopper = SignalStopper(
                stop_on_signals, grace=grace, force_after_grace=force_after_grace
            )
        server = ControlServer(
            path,
            allow_forced_stops=allow_forced_stops,
            signal_stopper=stopper,
            tcp=tcp,
            tls=tls,
            tokens=grants,
            name_os_threads=name_os_threads,
        )
        server._start()
        # A safety net for gRPC versions and settings not measured: a server
        # that accepts connections but never answers is never handed out.
        broken = forked and not answers_http2(server.socket_path, _AFTER_FORK_PROBE_SECONDS)
        if not broken:
            if stopper is not None:
                stopper.install()
            _force.prepare()
            if name_os_threads:
                _os_names.name_all_threads()
            _installed = server
            _served_in_pid = os.getpid()
    if broken:
        server.close(0)  # takes _install_lock: outside the block above
        raise ThreadctlError(
            f"{_AFTER_FORK}: gRPC (grpcio {grpc.__version__}) gave it a server that accepts"
            " connections but never answers. Start this process with a fresh interpreter"
            " (exec, or multiprocessing's 'spawn' or 'forkserver') to control it."
        )
    logger.debug("threadctl control server listening on %s", server.address)
    return server


def _check_fork_support() -> None:
    """Refuse, before touching gRPC, where a server in a forked child would do harm.

    Measured with a parent serving and a child calling install():
    - grpcio older than 1.80 keeps using the parent's epoll instance (a
      forked child shares it): the child's server never answered, and the
      parent died of SIGSEGV soon after (1.66.2, 1.75.1, 1.78.2).
    - with gRPC's fork support turned off, its leftover poller state made the
      child fail an internal check and abort (SIGABRT), 1.66.2 and 1.85.3.
    """
    version = tuple(int(part) for part in re.findall(r"\d+", grpc.__version__)[:2])
    if version < _GRPC_SERVES_AFTER_FORK:
        raise ThreadctlError(
            f"{_AFTER_FORK}: with grpcio {grpc.__version__} (before 1.80) a server here shares"
            " the parent's event polling and can crash the parent. Start this process with a"
            " fresh interpreter (exec, or multiprocessing's 'spawn' or 'forkserver') to"
            " control it; the parent's server is unaffected."
        )
    setting = os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        raise ThreadctlError(
            f"{_AFTER_FORK}: gRPC fork support is off (GRPC_ENABLE_FORK_SUPPORT={setting}),"
            " and a gRPC server in a forked child aborts the process"
        )


def _protect_grpc_threads(before: set[threading.Thread]) -> None:
    """Name and protect the Python thread gRPC started for this server.

    grpc.server.start() starts one daemon thread that runs grpc._server._serve.
    Only threads started during our start() call whose target lives in grpc's
    own modules are taken, so a host thread started meanwhile is never
    protected or renamed by mistake.
    """
    for thread in set(threading.enumerate()) - before:
        target = getattr(thread, "_target", None)
        if getattr(target, "__module__", "").startswith("grpc"):
            thread.name = "threadctl-serve"
            registry.protect(thread)
            _os_names.set_os_name(thread)


def _forget_in_child() -> None:
    """A forked child has no server threads: let it install its own (where
    gRPC allows; install() checks, see _served_in_pid)."""
    global _installed, _install_lock
    _installed = None
    _install_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
