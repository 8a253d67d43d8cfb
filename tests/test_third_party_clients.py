"""Third-party clients use the API with no .proto at hand, through server
reflection alone: one in another language (Node.js, @grpc/grpc-js, which
speaks reflection v1alpha) and buf's `buf curl` (Go's gRPC stack), over
reflection v1 and v1alpha. Both come from the npm registry
(tests/reflection_client, installed by `make test`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import DEADLINE, Host

CLIENT = Path(__file__).parent / "reflection_client"


def _installed(tool: str | None) -> str:
    """`tool`, or skip (fail in CI) when Node.js or the client's packages are missing."""
    if tool is None or not (CLIENT / "node_modules").is_dir() or not Path(tool).exists():
        if os.environ.get("THREADCTL_REQUIRE_NODE"):
            pytest.fail(
                "node or tests/reflection_client/node_modules missing (make test installs them)"
            )
        pytest.skip("needs Node.js and `npm ci` in tests/reflection_client (make test does it)")
    return tool


def test_node_client_lists_threads_through_reflection(workers: Host) -> None:
    node = _installed(shutil.which("node"))
    token = str(Path(workers.ready["socket"]).with_suffix(".token"))
    result = subprocess.run(
        [node, str(CLIENT / "reflect.js"), workers.ready["socket"], token],
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert "threadctl.v1.ThreadControl" in answer["services"]
    assert "grpc.health.v1.Health" in answer["services"]
    assert {"coop-1", "coop-2", "stubborn", "threadctl-serve"} <= set(answer["threads"])


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
def test_buf_curl_lists_the_services_and_calls_list_threads(workers: Host, protocol: str) -> None:
    # buf asks for reflection v1 first; with --reflect-protocol it asks only
    # the one version, as a client that knows no other would.
    buf = _installed(str(CLIENT / "node_modules" / ".bin" / "buf"))
    socket_path = workers.ready["socket"]
    token = Path(socket_path).with_suffix(".token").read_text().strip()
    curl = [buf, "curl", "--unix-socket", socket_path, "--protocol", "grpc"]
    curl += ["--http2-prior-knowledge", "--reflect-protocol", protocol]

    def run(*args: str) -> str:
        done = subprocess.run(
            [*curl, *args], capture_output=True, text=True, timeout=DEADLINE, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    services = run("--list-services", "http://localhost").split()  # no credentials
    call = ["-H", f"authorization: Bearer {token}", "-d", "{}"]
    listing = json.loads(run(*call, "http://localhost/threadctl.v1.ThreadControl/ListThreads"))

    assert {"threadctl.v1.ThreadControl", "grpc.health.v1.Health"} <= set(services)
    assert {
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= set(services)
    names = {thread["name"] for thread in listing["threads"]}
    assert {"coop-1", "coop-2", "stubborn", "threadctl-serve"} <= names
