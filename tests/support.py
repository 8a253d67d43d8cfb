"""Test support: real host processes, the real CLI, deadlines instead of sleeps."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from threadctl.client import open_channel, socket_token

HOSTS = Path(__file__).parent / "hosts"
DEADLINE = 20.0  # generous: the suite must pass on a loaded 2-core machine
THREADCTL = str(Path(sys.executable).with_name("threadctl"))


def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


class Host:
    """A real host program under test, talking over stdout (events) and stdin (commands).

    The program prints `READY <json>` when it is set up, and other lines as
    things happen; `expect()` waits for a line with a deadline.
    """

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.argv, self.env = argv, env
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.stderr_lines: list[str] = []
        self._pumps = [
            threading.Thread(
                target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True
            ),
            threading.Thread(
                target=self._pump, args=(self.proc.stderr, self.stderr_lines.append), daemon=True
            ),
        ]
        for pump in self._pumps:
            pump.start()
        try:
            self.ready: dict[str, Any] = json.loads(self.expect("READY ")[len("READY ") :])
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _pump(stream: Any, sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = DEADLINE) -> str:
        """The first line (not yet consumed) that starts with `prefix`."""
        for line in self.seen:
            if line.startswith(prefix):
                self.seen.remove(line)
                return line
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"host {self.argv} printed no {prefix!r} line within {timeout}s;"
                    f" exit={self.proc.poll()} stdout={self.seen} stderr={self.stderr_lines}"
                ) from None
            if line.startswith(prefix):
                return line
            self.seen.append(line)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def tid(self, name: str) -> int:
        return int(self.ready["threads"][name]["native_id"])

    def ident(self, name: str) -> int:
        return int(self.ready["threads"][name]["ident"])

    def stop(self) -> int:
        """End the host: close stdin (hosts exit on EOF), then terminate, then kill."""
        code = self._end()
        for pump in self._pumps:
            pump.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                with contextlib.suppress(BrokenPipeError):
                    stream.close()
        return code

    def _end(self) -> int:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                return self.proc.wait(timeout=DEADLINE)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.proc.send_signal(signal.SIGTERM)
                try:
                    return self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
        return self.proc.wait()


def kernel_thread_names(pid: int) -> dict[int, str]:
    """Thread id -> kernel thread name (what `top -H` shows) of every thread of `pid`."""
    names = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            names[int(task.name)] = (task / "comm").read_text().strip()
    return names


def readme_blocks(containing: str) -> list[str]:
    """The README's code blocks (between ``` fences, any language) that
    contain `containing`: its examples are run as written."""
    text = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [block for block in blocks if containing in block]


def run_host(script: str, *args: str, env: dict[str, str], timeout: float) -> tuple[Any, str]:
    """Run a host that prints `RESULT <json>` and exits (tests/hosts/`script`):
    the decoded result and the host's stderr. Fails unless it exits 0."""
    done = subprocess.run(
        [sys.executable, str(HOSTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert line is not None, done.stdout[-3000:]
    return json.loads(line[len("RESULT ") :]), done.stderr


def run_cli(
    *args: str, env: dict[str, str], timeout: float = DEADLINE
) -> subprocess.CompletedProcess[str]:
    """Run the installed `threadctl` console script."""
    return subprocess.run(
        [THREADCTL, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def cli_json(*args: str, env: dict[str, str]) -> Any:
    result = run_cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def connect(address: str) -> grpc.Channel:
    """A raw gRPC channel to a threadctl Unix socket (`unix:/path` or the path),
    sending the owner's token the way the CLI does."""
    path = Path(address.removeprefix("unix:"))
    return open_channel(f"unix:{path}", token=socket_token(path), tls=None)


def host_env(runtime_dir: Path) -> dict[str, str]:
    """An environment whose threadctl runtime directory is private to the test."""
    env = dict(os.environ)
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    env.pop("THREADCTL_TARGET", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def shape(lines: list[str]) -> set[str]:
    """Lines with every number as N and runs of blanks as one (ids, TIDs,
    times and column widths vary from run to run): to compare a README
    example with the real output."""
    return {re.sub(r"\s+", " ", re.sub(r"\d+(\.\d+)?", "N", line)).strip() for line in lines} - {""}
