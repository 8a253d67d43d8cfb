from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import HOSTS, Host, host_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    return host_env(runtime)


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG_RUNTIME_DIR for installs inside the test process."""
    base = tmp_path / "xdg"
    base.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    return base


@pytest.fixture
def start_host(env: dict[str, str]) -> Iterator[Callable[..., Host]]:
    """Start real host programs from tests/hosts; all are ended after the test."""
    started: list[Host] = []

    def start(script: str, *args: str, launcher: list[str] | None = None) -> Host:
        host = Host([sys.executable, *(launcher or []), str(HOSTS / script), *args], env)
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture
def workers(start_host: Callable[..., Host]) -> Host:
    return start_host("workers.py")


# Client certificates of the pki fixture: file name -> (subject as given to
# `openssl req -subj`, subjectAltName or None).
CLIENT_CERTIFICATES = {
    "ops-console": ("/CN=ops-console", None),
    "reader": ("/CN=reader", None),
    "stranger": ("/CN=stranger", None),
    # Issued to a reader; its O holds an escaped comma and a fake CN (issue 18.2).
    "escaped-comma": ("/CN=reader/O=x,CN=ops-console", None),
    "two-cns": ("/CN=ops-console/CN=reader", None),
    "san": ("/CN=reader", "DNS:ops-console,URI:spiffe://example/ops-console"),
    "no-cn": ("/O=ops-console", "DNS:ops-console"),
    "org-unit": ("/O=Acme, Inc./OU=ops/CN=lister", None),
}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for localhost, and the client certificates
    of CLIENT_CERTIFICATES (`<name>.pem`, `<name>.key`)."""
    return _make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA with its own certificates, as pki's: for rotations."""
    return _make_pki(tmp_path_factory.mktemp("other-pki"))


def _make_pki(directory: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make certificates")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=threadctl test CA")  # fmt: skip
    certificates = {"server": ("/CN=localhost", "DNS:localhost,IP:127.0.0.1"),
                    **CLIENT_CERTIFICATES}  # fmt: skip
    for name, (subject, alt_names) in certificates.items():
        ext = []
        if alt_names:
            (directory / f"{name}.ext").write_text(f"subjectAltName={alt_names}\n")
            ext = ["-extfile", f"{name}.ext"]
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *ext)  # fmt: skip
    return directory
