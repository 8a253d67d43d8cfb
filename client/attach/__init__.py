"""Attaching to processes that never imported threadctl.

- `_inspect`: decide from /proc whether a PID may be attached to (CPython,
  its version, permissions, opt-outs) before anything touches it.
- `_inject`: load the agent library into the process by ptrace (pyinjector),
  and unload it again; `_agent/agent.c` is that library.
- `_jobs`: run one job there within a deadline (private directory, result
  file, cleanup); `target/` holds the code that runs inside the process.
- `_oneshot`: the one-shot Backend (`--attach`); `_commands`: `threadctl
  attach` / `detach`; `_env`: what a full attach needs from this environment.
"""
