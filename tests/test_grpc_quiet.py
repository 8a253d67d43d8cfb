"""threadctl keeps gRPC's C core off the host's stderr (issue 13.8): forks and
failed TLS handshakes print nothing there, the setting does not leak into the
host's child processes, and a host that set GRPC_VERBOSITY itself gets gRPC's
lines as it asked."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

from support import Host, run_cli, wait_until

StartHost = Callable[..., Host]


def _noisy_host(start_host: StartHost, env: dict[str, str], pki: Path) -> Host:
    env["THREADCTL_TEST_TLS"] = json.dumps({
        "cert": str(pki / "server.pem"), "key": str(pki / "server.key"),
        "client_ca": str(pki / "ca.pem"),
    })  # fmt: skip
    return start_host("grpc_noise.py")


def _refused_without_certificate(target: str, pki: Path) -> bool:
    """A TLS client without a client certificate: the server refuses it after
    the client's half of the handshake (TLS 1.3), logging the failure before
    it closes the connection that this read then sees closed."""
    host, port = target.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection((host, int(port)), timeout=10)
    try:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.recv(1) == b""
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        raw.close()


def _make_noise(host: Host, env: dict[str, str], pki: Path) -> None:
    """Three forks, two failed handshakes (one from the real CLI)."""
    host.send("fork 3")
    host.expect("FORKED 3")
    assert _refused_without_certificate(host.ready["tcp"], pki)
    client_env = {k: v for k, v in env.items() if not k.startswith(("GRPC_", "THREADCTL_TEST"))}
    cli = run_cli("list", "--target", host.ready["tcp"], "--tls-ca", str(pki / "ca.pem"),
                  "--tls-server-name", "localhost", "--timeout", "3", env=client_env)  # fmt: skip
    assert cli.returncode == 3
    assert cli.stderr.startswith("threadctl: ")
    assert cli.stderr.count("\n") == 1, cli.stderr  # the CLI's own one line, no gRPC line


def test_forks_and_failed_handshakes_print_nothing_on_the_hosts_stderr(
    start_host: StartHost, env: dict[str, str], pki: Path
) -> None:
    host = _noisy_host(start_host, env, pki)

    _make_noise(host, env, pki)
    host.send("env")

    assert host.expect("ENV ") == "ENV unset unset"  # not left set, not inherited
    assert host.stop() == 0
    assert host.stderr_lines == []


def test_a_hosts_own_grpc_verbosity_is_respected(
    start_host: StartHost, env: dict[str, str], pki: Path
) -> None:
    env["GRPC_VERBOSITY"] = "debug"
    host = _noisy_host(start_host, env, pki)

    _make_noise(host, env, pki)
    host.send("env")

    assert host.expect("ENV ") == "ENV debug debug"
    wait_until(
        lambda: (
            any("fork_posix.cc" in line for line in host.stderr_lines)
            and any("Handshake failed" in line for line in host.stderr_lines)
        ),
        what=f"gRPC's fork and handshake lines on stderr: {host.stderr_lines[-5:]}",
    )
