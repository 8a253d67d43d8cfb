"""`threadctl top`: a live view of the target's threads, busiest first.

On a terminal it draws with curses (standard library: works over SSH in any
terminal that has a terminfo entry, and needs no dependency); up/down select a
thread, `s` asks it to stop (cooperatively), `q` or Ctrl-C quits. Without a
terminal (a pipe, a log) it prints one table per sample instead of drawing,
or with --json one JSON object per sample and line.
Samples come from the WatchThreads stream, so the client never polls. The
server ends every connection after a while, calls in flight included (after
hours; threadctl._limits): a watch that had delivered samples is reopened
then, one that fails before its first sample is an error.
"""

from __future__ import annotations

import contextlib
import curses
import json
import queue
import sys
import threading
from collections.abc import Iterator

from threadctl.client import _render
from threadctl.client._client import Client
from threadctl.client._errors import ClientError, TargetUnavailable
from threadctl.client._models import ThreadInfo, WatchSample
from threadctl.client._printable import printable
from threadctl.errors import ThreadctlError


def print_snapshots(client: Client, interval: float, iterations: int, as_json: bool) -> None:
    """Print a table per sample (after the first, which has no CPU shares
    yet), or with `as_json` one JSON object per line (JSON Lines)."""
    printed = 0
    for sample in samples(client, interval):
        if all(t.cpu_share is None for t in sample.threads):
            continue  # the first of a watch: no CPU shares yet
        if as_json:
            print(json.dumps(sample.to_json(), sort_keys=True), flush=True)
        else:
            print("\n".join(_render.top_table(sample)) + "\n", flush=True)
        printed += 1
        if iterations and printed >= iterations:
            return


def run_interactive(client: Client, interval: float) -> None:
    """Draw the live view until `q` or Ctrl-C."""
    queued: queue.Queue[WatchSample | BaseException] = queue.Queue()

    def feed() -> None:
        try:
            for sample in samples(client, interval):
                queued.put(sample)
        except ClientError as error:
            queued.put(error)

    threading.Thread(target=feed, name="threadctl-top-feed", daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        curses.wrapper(_TopScreen(client, queued).run)


def samples(client: Client, interval: float) -> Iterator[WatchSample]:
    """WatchThreads samples for as long as the caller iterates, across the
    server's ending of old connections (see the module docstring)."""
    while True:
        delivered = False
        try:
            for sample in client.watch_threads(interval=interval):
                delivered = True
                yield sample
            return
        except TargetUnavailable:
            if not delivered:
                raise


class _TopScreen:
    def __init__(self, client: Client, samples: queue.Queue[WatchSample | BaseException]) -> None:
        self._client = client
        self._samples = samples
        self._sample: WatchSample | None = None
        self._selected = 0
        self._status = "q quits, up/down select, s stops the selected thread (cooperatively)"

    def run(self, screen: curses.window) -> None:
        curses.curs_set(0)
        screen.timeout(100)
        while True:
            self._take_samples()
            self._draw(screen)
            key = screen.getch()
            if key in (ord("q"), ord("Q")):
                return
            if key == curses.KEY_DOWN:
                self._selected += 1
            elif key == curses.KEY_UP:
                self._selected = max(0, self._selected - 1)
            elif key in (ord("s"), ord("S")):
                self._stop_selected()

    def _take_samples(self) -> None:
        while True:
            try:
                item = self._samples.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, BaseException):
                raise item
            self._sample = item

    def _rows(self) -> list[ThreadInfo]:
        if self._sample is None:
            return []
        return _render.by_cpu_share(self._sample.threads)

    def _draw(self, screen: curses.window) -> None:
        height, width = screen.getmaxyx()
        screen.erase()
        if self._sample is None:
            screen.addnstr(0, 0, "waiting for the first sample...", width - 1)
        else:
            lines = _render.top_table(self._sample)
            self._selected = min(self._selected, max(0, len(lines) - 3))
            for y, line in enumerate(lines[: height - 1]):
                attr = curses.A_BOLD if y == 1 else 0
                if y == self._selected + 2:
                    attr = curses.A_REVERSE
                screen.addnstr(y, 0, line, width - 1, attr)
        screen.addnstr(height - 1, 0, self._status, width - 1, curses.A_DIM)
        screen.refresh()

    def _stop_selected(self) -> None:
        rows = self._rows()
        if not rows or self._selected >= len(rows):
            return
        thread = rows[self._selected]
        try:
            result = self._client.stop_thread(
                ident=thread.ident, expected_identity=thread.identity, reason="threadctl top"
            )
            self._status = _render.stop_summary(result)
        except ThreadctlError as error:
            self._status = f"not stopped: {printable(str(error))}"


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty() and sys.stdin.isatty()
