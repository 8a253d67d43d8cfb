"""`python -m threadctl [options] script.py [args...]` or `... -m module [args...]`.

Runs an unmodified program with the control server installed, so it can be
listed and stopped with the `threadctl` CLI without touching its code. The
program sees what `python script.py args` or `python -m module args` would
give it: sys.argv, sys.path[0], `__main__`, `__file__` (see _launch_args for
where threadctl's own options end).
"""

from __future__ import annotations

import os
import runpy
import sys
import zipfile

from threadctl import _launch_args


def main(argv: list[str] | None = None) -> None:
    launch = _launch_args.parse(sys.argv[1:] if argv is None else argv)
    # sys.argv first: the server reports it as the program's command line.
    if launch.module is not None:
        # As CPython: argv[0] is "-m" while the module is looked up (its parent
        # packages are imported then), then the module's file.
        sys.argv = ["-m", *launch.args]
        sys.argv[0] = _launch_args.module_origin(launch.module)
    else:
        assert launch.script is not None
        sys.argv = [launch.script, *launch.args]
    _start_server(launch)
    if launch.module is not None:
        runpy.run_module(launch.module, run_name="__main__", alter_sys=True)
    else:
        _run_script(launch.script)


def _start_server(launch: _launch_args.Launch) -> None:
    """Install the control server; if it cannot start, say so in one line and
    let the program run without it (issue 18.7: another user who creates the
    runtime directory first must not be able to stop our program from starting)."""
    import threadctl  # the server's modules load on first use

    options = launch.options
    try:
        server = threadctl.install(
            socket_path=options.socket,
            stop_on_signals=options.stop_on_signals,
            grace=options.grace,
            force_after_grace=options.force_after_grace,
            name_os_threads=options.name_os_threads,
        )
    except Exception as error:  # noqa: BLE001 - whatever failed, the program must run
        reason = " ".join(str(error).split()) or type(error).__name__
        program = launch.script or f"-m {launch.module}"
        print(
            f"threadctl: warning: running {program} without the control server: {reason}",
            file=sys.stderr,
            flush=True,
        )
        return
    if options.print_address:
        print(f"threadctl: control server at {server.address}", file=sys.stderr, flush=True)


def _run_script(script: str | None) -> None:
    """Run `script` as `python script` does.

    CPython puts the script's directory (symlinks resolved) at the head of
    sys.path where `python -m threadctl` put the current directory, and nothing
    with -P or -I; a directory or zip file is itself the head (runpy inserts
    it). sys.argv[0] and `__file__` are the path as given (runpy sets both
    from it; CPython 3.9+ would make `__file__` absolute, but then sys.argv[0]
    would be absolute too, and that is what programs read).
    """
    assert script is not None
    prepends = not (getattr(sys.flags, "safe_path", False) or sys.flags.isolated)
    if os.path.isdir(script) or zipfile.is_zipfile(script):
        if prepends:
            del sys.path[0]
        runpy.run_path(script, run_name="__main__")
        return
    if prepends:
        sys.path[0] = os.path.dirname(os.path.realpath(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
