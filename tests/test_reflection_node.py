"""A third-party client in another language (Node.js, @grpc/grpc-js) uses the
API with no .proto at hand, through server reflection alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import DEADLINE, Host

CLIENT = Path(__file__).parent / "reflection_client"


def test_node_client_lists_threads_through_reflection(workers: Host) -> None:
    node = shutil.which("node")
    if node is None or not (CLIENT / "node_modules").is_dir():
        if os.environ.get("THREADCTL_REQUIRE_NODE"):
            pytest.fail(
                "node or tests/reflection_client/node_modules missing (make test installs them)"
            )
        pytest.skip("needs Node.js and `npm ci` in tests/reflection_client (make test does it)")

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
