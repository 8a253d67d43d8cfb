"""Human renderings of client results (tables, stacks, one-line summaries).

Fetching lives in the client and argument handling in the CLI; this module only
turns results into text, so `--json` and the tables come from one source.
"""

from __future__ import annotations

import time

from threadctl.client._models import StopResult, ThreadInfo, ThreadList


def thread_table(listing: ThreadList) -> str:
    """The `threadctl list` table, with a one-line header naming the process."""
    process = listing.process
    program = " ".join(process.argv) or "?"
    lines = [
        f"PID {process.pid}  {_clip(program, 60)}  "
        f"(Python {process.python_version}, threadctl {process.threadctl_version},"
        f" {len(listing.threads)} threads)",
    ]
    rows = [("TID", "NAME", "CPU s", "COOP", "STOP", "FLAGS", "IDENT")]
    rows += [
        (
            str(t.native_id or "?"),
            _clip(t.name, 32),
            "?" if t.cpu_seconds is None else f"{t.cpu_seconds:.2f}",
            "yes" if t.cooperative else "no",
            "-" if t.stop_state == "none" else t.stop_state,
            _flags(t),
            str(t.ident),
        )
        for t in listing.threads
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right_aligned = {0, 2}
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right_aligned else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def thread_details(thread: ThreadInfo) -> str:
    """The `threadctl show` text: the record, then its stack like a traceback."""
    lines = [
        f"Thread {thread.native_id} {thread.name!r}",
        f"  ident:       {thread.ident}",
        f"  identity:    {thread.identity}",
        f"  flags:       {_flags(thread) or '-'}",
        f"  cooperative: {'yes' if thread.cooperative else 'no (never checked its stop flag)'}",
        f"  stop:        {_stop_text(thread)}",
        f"  cpu:         {'?' if thread.cpu_seconds is None else f'{thread.cpu_seconds:.2f} s'}",
    ]
    if thread.stack:
        lines.append("  stack (most recent call last):")
        if thread.stack_truncated:
            lines.append("    ... (outer frames cut)")
        for frame in thread.stack:
            line = str(frame.line) if frame.line else "unknown"
            lines.append(f'    File "{frame.filename}", line {line}, in {frame.function}')
    else:
        lines.append("  stack: (not running Python code right now)")
    return "\n".join(lines)


def stop_summary(result: StopResult) -> str:
    """One line that says what the stop achieved, plus a hint when useful."""
    t = result.thread
    who = f"thread {t.native_id} ({t.name})"
    again = " (a stop had already been requested)" if result.already_requested else ""
    if result.outcome == "exited":
        return f"{who} exited after {result.waited_seconds:.2f} s{again}"
    if result.outcome == "still_running":
        return (
            f"{who} is still running after {result.waited_seconds:.2f} s; the stop request"
            f" stands{again}{_not_cooperative_hint(t)}"
        )
    return f"stop requested for {who}{again}{_not_cooperative_hint(t)}"


def _not_cooperative_hint(thread: ThreadInfo) -> str:
    if thread.cooperative:
        return ""
    return "; note: it has never checked its stop flag, so it may not notice"


def _flags(thread: ThreadInfo) -> str:
    flags = []
    if thread.main:
        flags.append("main")
    if thread.protected:
        flags.append("protected")
    if thread.daemon:
        flags.append("daemon")
    return ",".join(flags)


def _stop_text(thread: ThreadInfo) -> str:
    if thread.stop_state == "none":
        return "not requested"
    when = time.strftime("%H:%M:%S", time.localtime(thread.stop_requested_at))
    reason = f" ({thread.stop_reason})" if thread.stop_reason else ""
    return f"{thread.stop_state} at {when}{reason}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
