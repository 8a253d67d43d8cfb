"""Third-party programs under test (waitress, gunicorn), started as their
users start them, and HTTP clients that record what a stopped request sees.

Unlike support.Host, such a program speaks no READY protocol: it is ready
when it logs the port it listens on (the tests bind port 0, so no port is
guessed and none is raced for). Program collects its output (stdout and
stderr, in order), waits for log lines with a deadline, puts its output in
every failure message, and always ends: a signal, then SIGKILL to its whole
process group (a gunicorn master's workers too).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time

from support import DEADLINE


class Program:
    """A real program, in a process group of its own."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self._lines: list[str] = []
        self._eof = False
        self._changed = threading.Condition()
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True  # no more output: wake waiters for good
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self._lines)

    def wait_for(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """The first output line matching `pattern` (re.search)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    output = "\n".join(self._lines)
                    raise AssertionError(
                        f"{self.argv} logged no line matching {pattern!r} within {timeout}s;"
                        f" exit={self.proc.poll()}\n{output}"
                    )
                self._changed.wait(remaining)

    def count(self, text: str) -> int:
        """How many output lines contain `text`."""
        with self._changed:
            return sum(text in line for line in self._lines)

    def end(self, sig: signal.Signals = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        """Send `sig` and wait for the exit status; SIGKILL the group if it
        does not exit in time (then the status says so: -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group()
            code = self.proc.wait()
        self._pump.join(timeout=5)
        return code

    def close(self) -> None:
        """Teardown: end it if it still runs, and leave no process of its group."""
        if self.proc.poll() is None:
            self.end(signal.SIGTERM, timeout=5)
        self._kill_group()
        self._pump.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


def http_get(port: int, path: str = "/", timeout: float = DEADLINE) -> tuple[int, bytes]:
    """Status and body of a GET on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class RawRequest:
    """A GET sent on a raw socket, so the test sees exactly what the server
    does with the connection: answers, closes it without an answer, or
    leaves it open and silent."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())

    def received_so_far(self) -> bytes | None:
        """What the server sent until now without blocking: None while the
        connection is open and nothing arrived, b"" once it was closed."""
        self.sock.setblocking(False)
        try:
            return self.sock.recv(65536)
        except BlockingIOError:
            return None
        finally:
            self.sock.settimeout(DEADLINE)

    def reply(self, timeout: float = DEADLINE) -> bytes:
        """Everything the server sends until it closes the connection."""
        self.sock.settimeout(timeout)
        chunks = []
        while chunk := self.sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()
