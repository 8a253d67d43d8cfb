"""Human renderings of client results (tables, stacks, one-line summaries).

Fetching lives in the client and argument handling in the CLI; this module only
turns results into text, so `--json` and the tables come from one source.
Every public renderer first takes a printable copy of what it renders
(_printable): text from the target process never reaches the terminal raw.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from threadctl.client._history_models import History
from threadctl.client._models import (
    Frame,
    StopAllResult,
    StopResult,
    ThreadInfo,
    ThreadList,
    WatchSample,
)
from threadctl.client._printable import printable_copy
from threadctl.client._task_models import CancelResult, LoopInfo, TaskInfo, TaskList


def thread_table(listing: ThreadList) -> str:
    """The `threadctl list` table, with a one-line header naming the process."""
    listing = printable_copy(listing)
    process = listing.process
    program = " ".join(process.argv) or "?"
    lines = [
        f"PID {process.pid}  {_clip(program, 60)}  "
        f"(Python {process.python_version}, threadctl {process.threadctl_version},"
        f" {len(listing.threads)} threads)",
    ]
    rows = [("TID", "NAME", "CPU s", "STATE", "COOP", "STOP", "FLAGS", "IDENT")]
    rows += [
        (
            _tid(t),
            _name(t),
            _cpu(t.cpu_seconds),
            activity_text(t, 30),
            "yes" if t.cooperative else "no",
            _stop_cell(t),
            _flags(t),
            str(t.ident),
        )
        for t in listing.threads
    ]
    lines.extend(columns(rows, right_aligned={0, 2}))
    return "\n".join(lines)


def top_table(sample: WatchSample, height: int | None = None) -> list[str]:
    """`threadctl top` lines: header, then threads by CPU share (busiest first)."""
    sample = printable_copy(sample)
    process = sample.process
    threads = by_cpu_share(sample.threads)
    total = sum(t.cpu_share or 0.0 for t in threads)
    lines = [
        f"PID {process.pid}  {_clip(' '.join(process.argv) or '?', 50)}  {len(threads)} threads"
        f"  CPU {total * 100:.0f}%  (every {sample.interval_seconds:.1f} s)",
    ]
    rows = [("TID", "NAME", "CPU%", "CPU s", "STATE", "STOP", "FLAGS")]
    rows += [
        (
            _tid(t),
            _name(t),
            "-" if t.cpu_share is None else f"{t.cpu_share * 100:.1f}",
            _cpu(t.cpu_seconds),
            activity_text(t, 36),
            _stop_cell(t),
            _flags(t),
        )
        for t in threads
    ]
    lines.extend(columns(rows, right_aligned={0, 2, 3}))
    return lines if height is None else lines[:height]


def by_cpu_share(threads: list[ThreadInfo]) -> list[ThreadInfo]:
    """Busiest first (the order of `top`); partial records after the others."""
    return sorted(threads, key=lambda t: (-(t.cpu_share or 0.0), t.partial, t.native_id))


def dump_text(listing: ThreadList, tasks: TaskList) -> str:
    """All threads with stacks, innermost frame first, in the layout of
    `py-spy dump` (so it reads at a glance beside it); under a thread that
    runs an asyncio loop, the loop and its tasks with their await chains."""
    listing = printable_copy(listing)
    tasks = printable_copy(tasks)
    names = {task.task_id: task.name for task in tasks.tasks}
    process = listing.process
    out = [
        f"Process {process.pid}: {' '.join(process.argv) or '?'}",
        f"Python v{process.python_version} (threadctl {process.threadctl_version})",
    ]
    placed: set[int] = set()
    for t in listing.threads:
        state = activity_text(t, 60)
        extra = "" if t.stop_state == "none" else f" [stop: {t.stop_state.replace('_', ' ')}]"
        out.append("")
        out.append(f'Thread {_tid(t)} ({state}): "{_name(t)}"{extra}')
        if t.partial:
            out.append("    (partial record: thread unknown to `threading`; no name or TID)")
        out += _dump_frames(t.stack or [], "    ")
        if t.stack_truncated:
            out.append("    ... (outer frames cut)")
        if not t.stack:
            out.append("    (no Python frame)")
        for loop in tasks.loops:
            if loop.thread_ident == t.ident:
                placed.add(loop.loop_id)
                out += _dump_loop(loop, tasks, names)
    elsewhere = [loop for loop in tasks.loops if loop.loop_id not in placed]
    if elsewhere:
        out += ["", "Event loops of no listed thread:"]
        out += [line for loop in elsewhere for line in _dump_loop(loop, tasks, names)]
    return "\n".join(out)


def _dump_loop(loop: LoopInfo, listing: TaskList, names: dict[int, str]) -> list[str]:
    out = ["", "    " + _loop_line(loop, names, listing.ids_are_addresses)]
    for task in listing.tasks:
        if task.loop_id == loop.loop_id:
            awaiting = f", awaiting {task.awaiting}" if task.awaiting else ""
            out.append(f'    Task {task.task_id} ({task.state}{awaiting}): "{task.name}"')
            out += _dump_frames(task.stack or [], "        ")
    return out


def _dump_frames(stack: list[Frame], indent: str) -> list[str]:
    """`stack` innermost last, printed innermost first as py-spy does."""
    return [
        f"{indent}{frame.function} ({frame.filename}:{frame.line or '?'})"
        for frame in reversed(stack)
    ]


def tasks_text(listing: TaskList, with_stacks: bool) -> str:
    """The `threadctl tasks` text: per event loop a line saying which thread
    runs it and whether it turns (BLOCKED, naming the step that holds it),
    then its tasks, as a table or (with stacks) one block each."""
    listing = printable_copy(listing)
    process = listing.process
    out = [
        f"PID {process.pid}  {_clip(' '.join(process.argv) or '?', 60)}  (Python"
        f" {process.python_version}, {_count(len(listing.loops), 'event loop')},"
        f" {_count(len(listing.tasks), 'pending task')})",
    ]
    names = {task.task_id: task.name for task in listing.tasks}
    for loop in listing.loops:
        tasks = [task for task in listing.tasks if task.loop_id == loop.loop_id]
        out += ["", _loop_line(loop, names, listing.ids_are_addresses)]
        if with_stacks:
            out += [line for task in tasks for line in _task_block(task)]
            continue
        rows = [("TASK", "NAME", "STATE", "COROUTINE", "AWAITING", "AWAITED BY")]
        rows += [
            (
                str(task.task_id),
                _clip(task.name, 32),
                task.state,
                _clip(task.coroutine, 40),
                _clip(task.awaiting or "-", 40),
                ",".join(map(str, task.awaited_by)) or "-",
            )
            for task in tasks
        ]
        out += ["  " + line for line in columns(rows, right_aligned={0})]
    if not listing.loops:
        out.append("no asyncio task is pending in this process")
    return "\n".join(out)


def _loop_line(loop: LoopInfo, names: dict[int, str], ids_are_addresses: bool) -> str:
    where = f"thread {loop.thread_native_id} ({_clip(loop.thread_name, 32)})"
    if not loop.thread_native_id:  # uvloop records none, and a one-shot cannot probe for it
        where = "an unknown thread"
    head = f"loop {loop.loop_id} ({loop.loop_class.rpartition('.')[2]})"
    if not loop.running:
        return f"{head}: not running"
    if not loop.stalled_seconds:
        return f"{head} in {where}: turning"
    blocked = f"{head} in {where}: BLOCKED for {loop.stalled_seconds:.2f} s by"
    if not loop.current_task_id:
        return f"{blocked} a callback"
    name = names.get(loop.current_task_id, "?")
    if ids_are_addresses:  # a one-shot's: no server knows them
        return f"{blocked} task {loop.current_task_id} ({name}) (`threadctl attach` to end it)"
    return (
        f"{blocked} task {loop.current_task_id} ({name})"
        f" (`threadctl cancel {loop.current_task_id} --force` ends it)"
    )


def _task_block(task: TaskInfo) -> list[str]:
    lines = [
        f"  task {task.task_id} '{task.name}' ({task.state}): {task.coroutine}"
        + (f", awaiting {task.awaiting}" if task.awaiting else "")
        + (f", awaited by {', '.join(map(str, task.awaited_by))}" if task.awaited_by else "")
    ]
    for frame in task.stack or []:
        line = str(frame.line) if frame.line else "unknown"
        lines.append(f'    File "{frame.filename}", line {line}, in {frame.function}')
    return lines


def history_table(history: History) -> str:
    """The `threadctl history` table: per stop or cancel, oldest first, when it
    answered, what it was, what it answered and how its thread or task ended."""
    history = printable_copy(history)
    process = history.process
    count = _count(len(history.entries), "stop or cancel", "stops and cancels")
    out = [
        f"PID {process.pid}  {_clip(' '.join(process.argv) or '?', 60)}  (Python"
        f" {process.python_version}, {count})"
    ]
    if not history.entries:
        return "\n".join([*out, "  threadctl has stopped no thread and cancelled no task here"])
    rows = [("AT", "ACTION", "TARGET", "OUTCOME", "ENDED", "BY", "REASON")]
    for entry in history.entries:
        if entry.task_id:
            target = f"task {entry.task_id} ({_clip(entry.name, 24)}: {_clip(entry.coroutine, 24)})"
        else:
            target = f"thread {entry.native_id or entry.ident} ({_clip(entry.name, 24)})"
        if not entry.how:
            ended = "runs on"
        elif entry.ended_observed:
            ended = f"{entry.how}, seen at {_clock(entry.ended_at)}"
        else:
            ended = f"{_clip(entry.how, 40)} at {_clock(entry.ended_at)}"
        rows.append(
            (
                _clock(entry.requested_at),
                entry.action + (" --force" if entry.forced else ""),
                target,
                entry.outcome,
                ended,
                _clip(entry.requested_by, 44),
                _clip(entry.reason, 32) or "-",
            )
        )
    return "\n".join(out + ["  " + line for line in columns(rows, right_aligned=set())])


def cancel_summary(result: CancelResult) -> str:
    """One line that says what the cancellation achieved."""
    result = printable_copy(result)
    t = result.task
    who = f"task {t.task_id} ({t.name})"
    after = f"after {result.waited_seconds:.2f} s"
    if result.outcome == "cancelled":
        return f"{who} was cancelled {after}"
    if result.outcome == "finished":
        return (
            f"{who} finished {after}, but not as cancelled: it returned or raised while"
            " handling the cancellation"
        )
    if result.outcome == "cancelling":
        return (
            f"{who} is still cancelling {after}: it runs its cleanup, or its loop has not"
            " turned to deliver the cancellation (see `threadctl tasks`)"
        )
    if result.outcome == "ignored":
        awaiting = f" (it awaits {t.awaiting})" if t.awaiting else ""
        return (
            f"{who} caught the cancellation and goes on{awaiting}; the request is over, a new"
            " cancel may try again"
        )
    if result.outcome == "force_ended":
        return f"{who} was ended by a forced stop {after}; its loop goes on"
    if result.outcome == "force_pending":
        return (
            f"forced stop of {who} is not done {after}: it waits to be raised in the task's"
            " code (blocked in a C call?), or the task is still unwinding"
        )
    if result.outcome == "moved_on":
        return (
            f"{who} awaited before the forced stop could be raised in it: nothing was raised,"
            " and the request is over (a cancel without --force reaches it now)"
        )
    return f"cancellation of {who} requested: it is raised in the task when it next runs"


def ps_table(rows: list[tuple[int, str, str, int | None, str]]) -> str:
    """`threadctl ps`: (pid, user, program, thread count or None, address) per process."""
    rows = printable_copy(rows)
    return "\n".join(
        columns(
            [("PID", "USER", "THREADS", "PROGRAM", "ADDRESS")]
            + [
                (str(pid), user, "?" if count is None else str(count), _clip(program, 60), address)
                for pid, user, program, count, address in rows
            ],
            right_aligned={0, 2},
        )
    )


def columns(rows: Sequence[tuple[str, ...]], right_aligned: set[int]) -> list[str]:
    """Rows as aligned text columns separated by two spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right_aligned else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def activity_text(thread: ThreadInfo, width: int) -> str:
    """ "sleeping: time.sleep", "running", "io: socket SocketIO.readinto", ..."""
    text = thread.activity
    if thread.activity_detail:
        text += f": {thread.activity_detail}"
    return _clip(text, width)


def _tid(thread: ThreadInfo) -> str:
    return str(thread.native_id) if thread.native_id else "-"


def _name(thread: ThreadInfo) -> str:
    return "(not in threading)" if thread.partial else _clip(thread.name, 32)


def _cpu(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds:.2f}"


def thread_details(thread: ThreadInfo) -> str:
    """The `threadctl show` text: the record, then its stack like a traceback."""
    thread = printable_copy(thread)
    lines = [
        f"Thread {thread.native_id} '{thread.name}'",  # escaped already: no repr()
        f"  ident:       {thread.ident}",
        f"  identity:    {thread.identity}",
        f"  flags:       {_flags(thread) or '-'}",
        f"  cooperative: {'yes' if thread.cooperative else 'no (never checked its stop flag)'}",
        f"  stop:        {_stop_text(thread)}",
        f"  cpu:         {'?' if thread.cpu_seconds is None else f'{thread.cpu_seconds:.2f} s'}",
        f"  state:       {activity_text(thread, 80)} (kernel: {thread.kernel_state or '?'})",
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
    result = printable_copy(result)
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
        until = t.force_waits_in or "it leaves its critical section"
        return f"forced stop of {who} is deferred until {until}{again}"
    if result.outcome == "force_delivered":
        if not result.forced:
            return (
                f"an earlier forced stop of {who} was delivered and the thread is still"
                " unwinding from it; nothing new was sent"
            )
        return f"forced stop of {who} was delivered; the thread is still unwinding"
    if result.outcome == "task_ended":
        return (
            f"forced stop of {who} ended its task: the exception was raised and caught further"
            " out (by a thread pool, or an `except BaseException`), and the thread goes on;"
            " the request is over"
        )
    if result.outcome == "moved_on":
        return (
            f"{who} finished what it was running before the forced stop could land; nothing"
            " was raised, and the request is over"
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


def stop_all_table(result: StopAllResult) -> str:
    """The `threadctl stop --all` report: one row per thread, then a summary."""
    result = printable_copy(result)
    rows = [("TID", "NAME", "OUTCOME", "FORCED")]
    rows += [
        (_tid(t), _name(t), outcome.replace("_", " "), "yes" if forced else "no")
        for t, outcome, forced in result.threads
    ]
    exited = sum(outcome == "exited" for _, outcome, _ in result.threads)
    summary = (
        f"{exited} of {len(result.threads)} threads exited in {result.waited_seconds:.2f} s"
        + ("" if result.all_exited else "; the others are still running")
    )
    return "\n".join([*columns(rows, right_aligned={0}), summary])


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
    if thread.partial:
        flags.append("partial")
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
            text += f", deferred until {thread.force_waits_in or 'it leaves its critical section'}"
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


def _count(number: int, thing: str, things: str = "") -> str:
    """'1 event loop', '2 event loops'."""
    return f"{number} {thing if number == 1 else things or thing + 's'}"
