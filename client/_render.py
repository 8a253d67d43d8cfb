"""Human renderings of client results (tables, stacks, one-line summaries).

Fetching lives in the client and argument handling in the CLI; this module only
turns results into text, so `--json` and the tables come from one source.
"""

from __future__ import annotations

import time

from threadctl.client._models import Frame, StopResult, ThreadInfo, ThreadList


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
            _stop_cell(t),
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
        how = " (forced)" if result.forced else ""
        return f"{who} exited after {result.waited_seconds:.2f} s{how}{again}"
    if result.outcome == "force_pending":
        where = f" in {_frame_text(t.blocked_in)}" if t.blocked_in else ""
        return (
            f"forced stop of {who} is pending: it is blocked in C code{where}; the exception"
            f" is raised when that call returns{again}"
        )
    if result.outcome == "force_deferred":
        return f"forced stop of {who} is deferred until it leaves its critical section{again}"
    if result.outcome == "force_delivered":
        return (
            f"forced stop of {who} was delivered, but the thread has not exited"
            f" (still unwinding, or it caught the exception){again}"
        )
    if result.outcome == "still_running":
        return (
            f"{who} is still running after {result.waited_seconds:.2f} s; the stop request"
            f" stands{again}{_not_cooperative_hint(t)}"
        )
    return f"stop requested for {who}{again}{_not_cooperative_hint(t)}"


def _frame_text(frame: Frame) -> str:
    line = frame.line or "?"
    return f"{frame.function} ({frame.filename}:{line})"


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


def _stop_cell(thread: ThreadInfo) -> str:
    cell = "-" if thread.stop_state == "none" else thread.stop_state.replace("_", "-")
    return f"{cell}+crit" if thread.in_critical_section else cell


def _stop_text(thread: ThreadInfo) -> str:
    if thread.stop_state == "none":
        text = "not requested"
    else:
        reason = f" ({thread.stop_reason})" if thread.stop_reason else ""
        text = f"requested at {_clock(thread.stop_requested_at)}{reason}"
    if thread.forced_at:
        text += f"; forced at {_clock(thread.forced_at)}"
        if thread.force_delivered_at:
            text += f", delivered at {_clock(thread.force_delivered_at)}"
        elif thread.stop_state == "force_deferred":
            text += ", deferred until its critical section ends"
        elif thread.blocked_in:
            text += f", pending: blocked in {_frame_text(thread.blocked_in)}"
    if thread.in_critical_section:
        text += "; in a critical section"
    return text


def _clock(timestamp: float) -> str:
    return (
        time.strftime("%H:%M:%S", time.localtime(timestamp))
        + f".{int(timestamp * 1000) % 1000:03d}"
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
