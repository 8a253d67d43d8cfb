"""One-shot results as the client's own models, printed like the normal commands.

A job returns plain JSON; here it becomes ThreadList / ThreadInfo /
StopResult, so the table, the stacks and --json have exactly the shape of
the server-backed commands. When the target has no threadctl, its threads'
activity is classified here, by the same function the server uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from threadctl._activity import classify
from threadctl._core.frames import FrameInfo
from threadctl.client import _render
from threadctl.client._exits import exit_code_of_stop
from threadctl.client._models import Frame, ProcessInfo, StopResult, ThreadInfo, ThreadList

# As `threadctl list --sort`.
SORT_KEYS: dict[str, Callable[[ThreadInfo], object]] = {
    "cpu": lambda t: -(t.cpu_seconds or 0.0),
    "tid": lambda t: t.native_id,
    "name": lambda t: t.name,
}


def print_result(command: str, args: argparse.Namespace, result: dict[str, Any]) -> int:
    if command == "stop":
        stop = StopResult(
            outcome=result["outcome"],
            thread=_thread_info(result["thread"], with_stack=False),
            already_requested=result["already_requested"],
            waited_seconds=result["waited_seconds"],
            forced=result["forced"],
        )
        if args.json:
            print_json(stop.to_json())
        else:
            print(_render.stop_summary(stop))
        return int(exit_code_of_stop(stop.outcome, args.wait))
    process = _process_info(result["process"])
    if command == "show":
        thread = _thread_info(result["thread"], with_stack=True)
        if args.json:
            print_json(thread.to_json())
        else:
            print(_render.thread_details(thread))
        return 0
    stacks = command == "dump" or bool(getattr(args, "stacks", False))
    listing = ThreadList(process, [_thread_info(t, with_stack=stacks) for t in result["threads"]])
    if getattr(args, "sort", "none") in SORT_KEYS:
        listing.threads.sort(key=SORT_KEYS[args.sort])
    if args.json:
        data = listing.to_json()
        data["process"] = dict(data["process"], **result["process"], attach="one-shot")  # type: ignore[arg-type]
        print_json(data)
    elif command == "dump":
        print(_render.dump_text(listing))
    elif stacks:
        print("\n\n".join(_render.thread_details(t) for t in listing.threads))
    else:
        print(_render.thread_table(listing))
    return 0


def _thread_info(record: dict[str, Any], *, with_stack: bool) -> ThreadInfo:
    """A ThreadInfo from a job's record; activity is classified here as the
    server does when the process has no threadctl to do it."""
    raw = record.get("stack") or []
    values = dict(record, stack=[_frame(f) for f in raw] if with_stack else None)
    values["blocked_in"] = _frame(record["blocked_in"]) if record.get("blocked_in") else None
    if "activity" not in record:
        # known_as: tagged in the target, by its own code objects (see _oneshot._walk).
        frames = [FrameInfo(f["filename"], f["line"], f["function"], f["known_as"]) for f in raw]
        kernel_state = str(record.get("kernel_state", ""))
        activity, detail = classify(frames, record.get("callee"), lambda: kernel_state)
        values.update(activity=activity.value, activity_detail=detail)
    known = {field.name for field in fields(ThreadInfo)}
    return ThreadInfo(**{key: value for key, value in values.items() if key in known})


def _frame(frame: dict[str, Any]) -> Frame:
    return Frame(frame["filename"], frame["line"], frame["function"])


def _process_info(process: dict[str, Any]) -> ProcessInfo:
    loaded = process["threadctl_version"]
    return ProcessInfo(
        pid=process["pid"],
        argv=process["argv"],
        python_version=process["python_version"],
        threadctl_version=f"{loaded}, one-shot" if loaded else "one-shot",
    )


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
