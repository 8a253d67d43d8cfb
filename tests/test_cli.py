"""The `threadctl` CLI against real host processes: output, exit codes, targets."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from support import DEADLINE, THREADCTL, Host, cli_json, run_cli


def test_list_shows_every_thread_with_its_facts(workers: Host, env: dict[str, str]) -> None:
    listing = cli_json("list", "--pid", str(workers.pid), env=env)
    by_name = {t["name"]: t for t in listing["threads"]}

    assert listing["process"]["pid"] == workers.pid
    for name in ("coop-1", "coop-2", "stubborn", "MainThread"):
        assert by_name[name]["native_id"] == workers.tid(name)
        assert by_name[name]["ident"] == workers.ident(name)
    assert by_name["coop-1"]["cooperative"] is True
    assert by_name["stubborn"]["cooperative"] is False
    assert by_name["stubborn"]["daemon"] is True
    assert by_name["MainThread"]["main"] is True
    assert by_name["threadctl-serve"]["protected"] is True
    assert all(t["stop_state"] == "none" for t in listing["threads"])
    assert all(isinstance(t["cpu_seconds"], float) for t in listing["threads"])
    assert len({t["identity"] for t in listing["threads"]}) == len(listing["threads"])
    assert "stack" not in by_name["coop-1"]


def test_list_table_names_the_process_and_threads(workers: Host, env: dict[str, str]) -> None:
    result = run_cli("list", "--pid", str(workers.pid), env=env)

    assert result.returncode == 0, result.stderr
    header, columns, *rows = result.stdout.splitlines()
    assert header.startswith(f"PID {workers.pid} ")
    assert columns.split() == ["TID", "NAME", "CPU", "s", "STATE", "COOP", "STOP", "FLAGS", "IDENT"]
    coop_row = next(r for r in rows if " coop-1 " in r)
    assert coop_row.split()[0] == str(workers.tid("coop-1"))


def test_list_with_stacks_shows_where_each_thread_is(workers: Host, env: dict[str, str]) -> None:
    listing = cli_json("list", "--stacks", "--pid", str(workers.pid), env=env)
    coop = next(t for t in listing["threads"] if t["name"] == "coop-1")

    calls = [(f["filename"].rsplit("/", 1)[-1], f["function"]) for f in coop["stack"]]
    at = calls.index(("workers.py", "cooperative"))
    assert calls[at + 1] == ("_flag.py", "sleep")


def test_stop_by_native_tid_waits_for_the_thread_to_exit(
    workers: Host, env: dict[str, str]
) -> None:
    result = run_cli(
        "stop",
        str(workers.tid("coop-1")),
        "--wait",
        "10",
        "--reason",
        "test",
        "--pid",
        str(workers.pid),
        env=env,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"thread {workers.tid('coop-1')} (coop-1) exited after")
    workers.expect("EXITED coop-1")
    names = {t["name"] for t in cli_json("list", "--pid", str(workers.pid), env=env)["threads"]}
    assert "coop-1" not in names
    assert "coop-2" in names


def test_stop_by_ident_json(workers: Host, env: dict[str, str]) -> None:
    outcome = cli_json(
        "stop", str(workers.ident("coop-2")), "--wait", "10", "--pid", str(workers.pid), env=env
    )

    assert outcome["outcome"] == "exited"
    assert outcome["thread"]["name"] == "coop-2"
    assert outcome["thread"]["stop_state"] == "requested"
    workers.expect("EXITED coop-2")


def test_stop_without_wait_answers_requested(workers: Host, env: dict[str, str]) -> None:
    outcome = cli_json("stop", str(workers.tid("coop-1")), "--pid", str(workers.pid), env=env)

    assert outcome["outcome"] == "requested"
    workers.expect("EXITED coop-1")


def test_stop_of_a_thread_that_never_checks_its_flag(workers: Host, env: dict[str, str]) -> None:
    tid = str(workers.tid("stubborn"))
    requested = run_cli("stop", tid, "--reason", "runaway", "--pid", str(workers.pid), env=env)
    waited = run_cli("stop", tid, "--wait", "0.3", "--json", "--pid", str(workers.pid), env=env)

    assert requested.returncode == 0, requested.stderr
    assert "stop requested" in requested.stdout
    assert "never checked its stop flag" in requested.stdout
    assert waited.returncode == 6, waited.stderr
    outcome = json.loads(waited.stdout)
    assert outcome["outcome"] == "still_running"
    assert outcome["already_requested"] is True
    listing = cli_json("list", "--pid", str(workers.pid), env=env)
    stubborn = next(t for t in listing["threads"] if t["name"] == "stubborn")
    assert stubborn["stop_state"] == "requested"
    assert stubborn["stop_reason"] == "runaway"


def test_unknown_tid_exits_4(workers: Host, env: dict[str, str]) -> None:
    result = run_cli("stop", "4194304", "--pid", str(workers.pid), env=env)

    assert result.returncode == 4
    assert result.stderr == (
        f"threadctl: no live thread with TID or ident 4194304 in process {workers.pid}\n"
    )
    assert result.stdout == ""


def test_stopping_a_server_thread_is_refused(workers: Host, env: dict[str, str]) -> None:
    listing = cli_json("list", "--pid", str(workers.pid), env=env)
    serve = next(t for t in listing["threads"] if t["name"] == "threadctl-serve")

    result = run_cli("stop", str(serve["native_id"]), "--pid", str(workers.pid), env=env)

    assert result.returncode == 5
    assert "belongs to the control server" in result.stderr
    after = cli_json("list", "--pid", str(workers.pid), env=env)
    assert (
        next(t for t in after["threads"] if t["name"] == "threadctl-serve")["stop_state"] == "none"
    )


def test_stopping_the_main_thread_needs_allow_main(workers: Host, env: dict[str, str]) -> None:
    main_tid = str(workers.tid("MainThread"))
    refused = run_cli("stop", main_tid, "--pid", str(workers.pid), env=env)
    allowed = cli_json("stop", main_tid, "--allow-main", "--pid", str(workers.pid), env=env)

    assert refused.returncode == 5
    assert "--allow-main" in refused.stderr
    assert allowed["outcome"] == "requested"


def test_show_prints_the_record_and_stack(workers: Host, env: dict[str, str]) -> None:
    result = run_cli("show", str(workers.tid("coop-1")), "--pid", str(workers.pid), env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Thread {workers.tid('coop-1')} 'coop-1'\n")
    assert "cooperative: yes" in result.stdout
    assert "in cooperative" in result.stdout


def test_target_defaults_to_the_only_running_server(workers: Host, env: dict[str, str]) -> None:
    listing = cli_json("list", env=env)

    assert listing["process"]["pid"] == workers.pid


def test_target_from_environment_and_option(workers: Host, env: dict[str, str]) -> None:
    socket = workers.ready["socket"]
    by_option = cli_json("list", "--target", socket, env=env)
    by_env = cli_json("list", env={**env, "THREADCTL_TARGET": f"unix:{socket}"})
    by_number = cli_json("list", "--target", str(workers.pid), env=env)  # a PID, not a host

    assert by_option["process"]["pid"] == by_env["process"]["pid"] == workers.pid
    assert by_number["process"]["pid"] == workers.pid


def test_several_servers_ask_which_one(start_host, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    first, second = start_host("workers.py"), start_host("workers.py")

    result = run_cli("list", env=env)

    assert result.returncode == 3
    assert "several threadctl processes" in result.stderr
    assert str(first.pid) in result.stderr
    assert str(second.pid) in result.stderr


def test_no_server_exits_3(env: dict[str, str]) -> None:
    nobody = run_cli("list", env=env)
    not_ours = run_cli("list", "--pid", "1", env=env)

    assert nobody.returncode == 3
    assert nobody.stderr.startswith("threadctl: no threadctl process of this user is running")
    assert not_ours.returncode == 3
    assert "process 1 runs no threadctl server" in not_ours.stderr


def test_unreachable_socket_exits_3(env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("list", "--target", str(tmp_path / "nothing.sock"), "--timeout", "2", env=env)

    assert result.returncode == 3
    assert result.stderr.startswith("threadctl: cannot reach the threadctl server at unix:")
    assert "Traceback" not in result.stderr


def test_health_answers_serving_and_its_exit_code_tells_a_probe(
    workers: Host, env: dict[str, str]
) -> None:
    pid = str(workers.pid)
    serving = run_cli("health", "--pid", pid, env=env)
    as_json = cli_json("health", "--service", "threadctl.v1.ThreadControl", "--pid", pid, env=env)
    unknown = run_cli("health", "--service", "no.such.Service", "--pid", pid, env=env)
    workers.stop()
    gone = run_cli("health", "--pid", pid, env=env)

    assert (serving.returncode, serving.stdout) == (0, "SERVING\n"), serving.stderr
    assert as_json == {"service": "threadctl.v1.ThreadControl", "status": "SERVING"}
    assert unknown.returncode == 2
    assert unknown.stderr == "threadctl: the server has no service named 'no.such.Service'\n"
    assert gone.returncode == 3
    assert "Traceback" not in gone.stderr


def test_output_that_cannot_be_written_is_one_line_or_silence(
    workers: Host, env: dict[str, str]
) -> None:
    def listing(stdout: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [THREADCTL, "list", "--stacks", "--pid", str(workers.pid)],
            env=env, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=DEADLINE,
            check=False,
        )  # fmt: skip

    with open("/dev/full", "w") as full:  # a full disk
        no_space = listing(full.fileno())
    read_end, write_end = os.pipe()
    os.close(read_end)  # `threadctl list | head -1`, once head has exited
    try:
        closed_pipe = listing(write_end)
    finally:
        os.close(write_end)

    assert no_space.returncode == 1
    assert no_space.stderr == "threadctl: writing the output: No space left on device\n"
    assert (closed_pipe.returncode, closed_pipe.stderr) == (1, "")


def test_usage_errors_exit_2(env: dict[str, str]) -> None:
    for argv in (
        ["stop"],
        ["stop", "0"],
        ["stop", "-3"],
        ["stop", "5", "--wait", "nan"],
        ["frobnicate"],
    ):
        result = run_cli(*argv, env=env)
        assert result.returncode == 2, argv
        assert "Traceback" not in result.stderr


# Text a target process controls that would act on a terminal: set the window
# title, clear the screen, a right-to-left override, a C1 CSI, and a newline
# and tab that would start a fake line (issue 18.6).
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\u202eevil\x9b31m\n\tfake line"
ESCAPED = "\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil\\x9b31m\\x0a\\x09fake line"
TERMINAL_ACTIVE = {*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), "\u202e"} - {"\n"}


def test_text_of_the_target_reaches_the_terminal_escaped_and_json_exact(
    start_host: Callable[..., Host], env: dict[str, str], tmp_path: Path
) -> None:
    host = start_host("escapes.py", HOSTILE)
    target = ["--pid", str(host.pid)]
    tid = str(host.ready["tid"])
    listing = cli_json("list", *target, env=env)
    human = {
        " ".join(args): run_cli(*args, *target, env=env)
        for args in (["list"], ["list", "--stacks"], ["show", tid], ["dump"],
                     ["top", "-n", "1", "--interval", "0.2"], ["stop", tid, "--wait", "10"])
    }  # fmt: skip
    human["ps"] = run_cli("ps", env=env)
    human["error"] = run_cli("list", "--target", str(tmp_path / f"{HOSTILE}.sock"), env=env)

    for name, result in human.items():
        text = result.stdout + result.stderr
        assert not TERMINAL_ACTIVE & set(text), (name, text)
        assert "fake line" not in [line.strip() for line in text.splitlines()], (name, text)
    for name in ("list --stacks", f"show {tid}", "dump"):
        assert human[name].stdout.count(ESCAPED) >= 3, human[name].stdout  # name, function, file
    assert f"escapes.py {ESCAPED[:18]}" in human["list"].stdout  # argv in the header (clipped)
    assert human["error"].returncode == 3
    assert human["error"].stderr.endswith(f"{ESCAPED}.sock: no such socket\n")
    assert human[f"stop {tid} --wait 10"].returncode == 0
    host.expect("EXITED")
    [thread] = [t for t in listing["threads"] if t["native_id"] == int(tid)]
    assert thread["name"] == HOSTILE
    assert HOSTILE in listing["process"]["argv"]


def test_version_names_threadctl_python_and_the_grpc_packages(env: dict[str, str]) -> None:
    result = run_cli("--version", env=env)

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"threadctl \d+\.\d+\.\d+\S* \(Python 3\.\d+\.\d+\S*, grpcio \S+, protobuf \S+\)\n",
        result.stdout,
    ), result.stdout


def test_a_mistyped_command_gets_a_suggestion(env: dict[str, str]) -> None:
    typo = run_cli("-p", "1", "--timeout", "2", "lsit", env=env)  # options before it skipped
    unknown = run_cli("frobnicate", env=env)

    assert typo.returncode == 2
    assert typo.stderr.endswith("threadctl: error: unknown command 'lsit'; did you mean 'list'?\n")
    assert unknown.returncode == 2
    assert "unknown command 'frobnicate' (commands: list, " in unknown.stderr


def test_short_pid_option(workers: Host, env: dict[str, str]) -> None:
    assert cli_json("list", "-p", str(workers.pid), env=env)["process"]["pid"] == workers.pid


# What the user typed -> the only completion.
COMPLETIONS = {
    "threadctl li": "list",
    "threadctl --pid 12 st": "stop",  # an option's value is not the command
    "threadctl stop --fo": "--force",
    "threadctl list --sort c": "cpu",
    "threadctl completion z": "zsh",
}


def test_bash_completion_completes_commands_options_and_choices(env: dict[str, str]) -> None:
    script = run_cli("completion", "bash", env=env)
    assert script.returncode == 0, script.stderr
    driver = (
        script.stdout
        + 'for words in "$@"; do read -ra COMP_WORDS <<< "$words"; '
        + "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _threadctl; "
        + 'echo "${COMPREPLY[*]}"; done\n'
    )
    done = subprocess.run(
        ["bash", "-c", driver, "bash", *COMPLETIONS], capture_output=True, text=True,
        timeout=DEADLINE, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == list(COMPLETIONS.values())


def test_zsh_completion_completes_like_bash(env: dict[str, str]) -> None:
    """The zsh script under zsh's own compinit and bashcompinit: it registers
    the completer, and zsh's `compgen -F` (what its _bash_complete calls, in
    sh emulation) gets the matches; the prefix filter stands in for compadd,
    which only runs inside an interactive completion widget."""
    zsh = shutil.which("zsh")
    if zsh is None:
        if os.environ.get("THREADCTL_REQUIRE_ZSH"):
            pytest.fail("zsh is missing (.ci/run installs it)")
        pytest.skip("needs zsh")
    script = run_cli("completion", "zsh", env=env)
    assert script.returncode == 0, script.stderr
    driver = (
        "autoload -U compinit && compinit -u\n"
        + script.stdout
        + 'print -r -- "registered: $_comps[threadctl]"\n'
        + 'for line in "$@"; do words=( ${=line} ); CURRENT=${#words}; '
        + 'COMP_WORDS=( "${words[@]}" ); COMP_CWORD=$(( CURRENT - 1 )); '
        + 'matches=( ${(f)"$(compgen -F _threadctl -- ${words[CURRENT]})"} ); '
        + 'print -r -- "${(j: :)${(@M)matches:#${words[CURRENT]}*}}"; done\n'
    )
    done = subprocess.run(
        [zsh, "-f", "-c", driver, "zsh", *COMPLETIONS], capture_output=True, text=True,
        timeout=DEADLINE, check=False, env={**env, "HOME": str(Path(env["XDG_RUNTIME_DIR"]))},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        "registered: _bash_complete -F _threadctl",
        *COMPLETIONS.values(),
    ]
