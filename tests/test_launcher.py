"""`python -m threadctl`: threadctl's options come first, everything after the
script or `-m MODULE` belongs to the program, which sees what plain `python`
would give it; usage errors are one line and exit status 2."""

from __future__ import annotations

import re
import select
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from support import DEADLINE, HOSTS, Host, cli_json

LAUNCH = [sys.executable, "-m", "threadctl"]
HELP = " (see python -m threadctl --help)"
StartHost = Callable[..., Host]


def _names(host: Host, env: dict[str, str]) -> set[str]:
    return {t["name"] for t in cli_json("list", "--pid", str(host.pid), env=env)["threads"]}


def _program_facts(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, object]:
    """What plain_script.py reports about itself when started with `argv`."""
    host = Host(argv, env, cwd=cwd)
    try:
        return host.ready
    finally:
        assert host.stop() == 0


def test_launcher_runs_an_unmodified_script(start_host: StartHost, env: dict[str, str]) -> None:
    host = start_host("plain_script.py", "--flag", "value", launcher=["-m", "threadctl"])

    assert host.ready["argv"] == [str(HOSTS / "plain_script.py"), "--flag", "value"]
    assert host.ready["main_module"] == "__main__"
    listing = cli_json("list", "--pid", str(host.pid), env=env)
    assert "plain-worker" in {t["name"] for t in listing["threads"]}
    assert listing["process"]["argv"] == host.ready["argv"]
    assert host.stop() == 0


@pytest.mark.parametrize(
    "program",
    [
        ["plain_script.py", "--flag", "-b", "x", "--", "-h"],
        ["-m", "plain_script", "--bind", "127.0.0.1", "-b", "x", "--", "-h", "--socket", "s"],
    ],
    ids=["script", "module"],
)
def test_the_program_sees_what_plain_python_gives_it(
    program: list[str], env: dict[str, str]
) -> None:
    """sys.argv (argv[0] for -m is the module's file, as CPython sets it),
    sys.path[0], __name__ and __spec__ are those of `python ...`. A script's
    __file__ is the path as given (runpy's), where CPython makes it absolute."""
    env["PYTHONPATH"] = str(HOSTS)

    plain = _program_facts([sys.executable, *program], env, cwd=HOSTS)
    launched = _program_facts([*LAUNCH, *program], env, cwd=HOSTS)

    assert HOSTS / str(launched.pop("file")) == Path(str(plain.pop("file")))
    assert launched == plain
    if program[0] == "-m":
        assert plain["argv"] == [str(HOSTS / "plain_script.py"), *program[2:]]
    else:
        assert plain["argv"] == program


def test_module_options_and_dashes_belong_to_the_module(env: dict[str, str]) -> None:
    env["PYTHONPATH"] = str(HOSTS)
    host = Host([*LAUNCH, "--print-address", "-mplain_script", "--bind", "x", "--", "-h"], env)
    try:
        assert host.ready["argv"] == [str(HOSTS / "plain_script.py"), "--bind", "x", "--", "-h"]
        assert "plain-worker" in _names(host, env)
        assert any("threadctl: control server at unix:" in line for line in host.stderr_lines)
    finally:
        assert host.stop() == 0


def test_name_os_threads_names_the_programs_threads_for_top_h(env: dict[str, str]) -> None:
    host = Host([*LAUNCH, "--name-os-threads", str(HOSTS / "plain_script.py")], env)
    try:
        listing = cli_json("list", "--pid", str(host.pid), env=env)
        worker = next(t for t in listing["threads"] if t["name"] == "plain-worker")
        kernel_name = Path(f"/proc/{host.pid}/task/{worker['native_id']}/comm").read_text()
    finally:
        assert host.stop() == 0

    assert kernel_name == "plain-worker\n"


def test_double_dash_ends_threadctls_options(env: dict[str, str]) -> None:
    script = str(HOSTS / "plain_script.py")
    host = Host([*LAUNCH, "--grace", "3", "--", script, "--socket", "x", "-m", "y"], env)
    try:
        assert host.ready["argv"] == [script, "--socket", "x", "-m", "y"]
        assert "plain-worker" in _names(host, env)
    finally:
        assert host.stop() == 0


def test_a_standard_library_server_with_its_own_options(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The example of issue 13.7: `-m http.server --bind 127.0.0.1 PORT`."""
    (tmp_path / "hello.txt").write_text("hello\n")
    proc = subprocess.Popen(
        [*LAUNCH, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(tmp_path), "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], DEADLINE)
        assert readable, f"http.server printed nothing within {DEADLINE}s"
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (...) ..."
        port = re.search(r"port (\d+)", line)
        assert port is not None, (line, proc.poll())
        url = f"http://127.0.0.1:{port.group(1)}/hello.txt"
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            assert response.read() == b"hello\n"
        listing = cli_json("list", "--pid", str(proc.pid), env=env)
        assert listing["process"]["argv"][1:] == [
            "--bind", "127.0.0.1", "--directory", str(tmp_path), "0"
        ]  # fmt: skip
        assert listing["process"]["argv"][0].endswith("/http/server.py")
    finally:
        proc.terminate()
        proc.communicate(timeout=DEADLINE)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a script to run, or -m MODULE" + HELP),
        (["--bogus", "app.py"], "unrecognized arguments: --bogus" + HELP),
        (["--print-address"], "give a script to run, or -m MODULE" + HELP),
        (["-m"], "-m needs a module name" + HELP),
        (["--"], "give a script after --" + HELP),
        (["--grace", "soon", "app.py"], "argument --grace: invalid float value: 'soon'" + HELP),
        (["-m", "no_such_module_xyz"], "no module named 'no_such_module_xyz'"),
        (["-m", "no_such_package_xyz.sub"],
         "error while finding module 'no_such_package_xyz.sub': ModuleNotFoundError:"
         " No module named 'no_such_package_xyz'"),
        (["-m", "json"], "no module named json.__main__; 'json' is a package and cannot be run"),
        (["missing.py", "--flag"],
         "can't open file '{cwd}/missing.py': [Errno 2] No such file or directory"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], message: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = subprocess.run(
        [*LAUNCH, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=DEADLINE, check=False,
    )  # fmt: skip

    assert result.returncode == 2
    assert result.stderr == f"python -m threadctl: error: {message.format(cwd=tmp_path)}\n"
    assert result.stdout == ""
