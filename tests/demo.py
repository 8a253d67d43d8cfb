"""`make demo`: threadctl against a real host process, as an operator uses it.

Starts tests/hosts/demo_app.py under `python -m threadctl` (no code change in
the app), then runs the real `threadctl` CLI: list, stop one worker
cooperatively with --wait, list again; finally interrupts the app (SIGINT) and
checks that it shut down cleanly and removed its socket.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREADCTL = str(Path(sys.executable).with_name("threadctl"))
DEADLINE = 20.0


def run(*args: str) -> subprocess.CompletedProcess[str]:
    print(f"\n$ threadctl {shlex.join(args)}", flush=True)
    result = subprocess.run(
        [THREADCTL, *args], capture_output=True, text=True, timeout=60, check=False
    )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    print(f"(exit code {result.returncode})", flush=True)
    return result


def wait_for(path: Path, present: bool) -> None:
    deadline = time.monotonic() + DEADLINE
    while path.exists() != present:
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {path} did not {'appear' if present else 'go away'}")
        time.sleep(0.05)


def wait_for_socket(find: Callable[[int], Path | None], pid: int) -> Path:
    """The socket of `pid`, once it exists (in the runtime dir or a fallback)."""
    deadline = time.monotonic() + DEADLINE
    while (path := find(pid)) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: process {pid} made no control socket")
        time.sleep(0.05)
    return path


def main() -> int:
    from threadctl._paths import find_socket

    app = [sys.executable, "-m", "threadctl", str(HERE / "hosts" / "demo_app.py")]
    print(f"$ {shlex.join(['python', *app[1:]])} &", flush=True)
    host = subprocess.Popen(app)
    try:
        socket = wait_for_socket(find_socket, host.pid)
        pid = str(host.pid)
        run("list", "--pid", pid)
        listing = json.loads(
            subprocess.run(
                [THREADCTL, "list", "--pid", pid, "--json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        indexer = next(t for t in listing["threads"] if t["name"] == "indexer")
        stopped = run(
            "stop",
            str(indexer["native_id"]),
            "--wait",
            "5",
            "--reason",
            "demo: reindex",
            "--pid",
            pid,
        )
        run("list", "--pid", pid)
        watchdog = next(t for t in listing["threads"] if t["name"] == "legacy-watchdog")
        ignored = run("stop", str(watchdog["native_id"]), "--wait", "1", "--pid", pid)
        print(f"\n$ kill -INT {pid}", flush=True)
        host.send_signal(signal.SIGINT)
        code = host.wait(timeout=DEADLINE)
        wait_for(socket, present=False)
        print(f"demo app exited with {code}; its socket {socket} is gone", flush=True)
        ok = stopped.returncode == 0 and ignored.returncode == 6 and code == 0
        print("\ndemo: OK" if ok else "\ndemo: FAILED", flush=True)
        return 0 if ok else 1
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()


if __name__ == "__main__":
    os.chdir(HERE.parent)
    sys.exit(main())
