"""Attaching to processes that never imported threadctl: full attach (server
loaded into the process), one-shot operations on any supported CPython, and
every refusal, with the target alive and unharmed afterwards.

The commands run through the real `threadctl` CLI, in a child process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import DEADLINE, HOSTS, THREADCTL, Host, wait_until
from support import kernel_thread_names as tasks
from threadctl.client import Client, cli
from threadctl.client.attach import _env

StartPlain = Callable[..., Host]
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"


def attach_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`threadctl attach|detach PID`, or another command in one-shot mode (--attach)."""
    one_shot = [] if args[0] in ("attach", "detach") else ["--attach"]
    return subprocess.run(
        [THREADCTL, *args, *one_shot],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def same_python_without_threadctl() -> str:
    """This CPython without the test environment's packages (a venv's base)."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")


def other_python() -> str | None:
    """An installed CPython 3.10-3.13 of another minor version than ours."""
    for minor in (12, 13, 11, 10):
        if minor == sys.version_info[1]:
            continue
        found = sorted(PYENV.glob(f"3.{minor}.*/bin/python3.{minor}"))
        if found:
            return str(found[-1])
    return None


@pytest.fixture
def start_plain(env: dict[str, str]) -> Iterator[StartPlain]:
    """Start tests/hosts/plain_target.py with a given interpreter (and env)."""
    started: list[Host] = []

    def start(
        python: str,
        *args: str,
        python_args: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
    ) -> Host:
        argv = [python, *python_args, str(HOSTS / "plain_target.py"), *args]
        started.append(Host(argv, {**env, **(extra_env or {})}))
        return started[-1]

    yield start
    for host in started:
        host.stop()


def audits(host: Host, count: int) -> list[dict[str, object]]:
    return [json.loads(host.expect("AUDIT ")[len("AUDIT ") :]) for _ in range(count)]


def test_attach_list_force_stop_and_detach_a_program_without_threadctl(
    start_plain: StartPlain, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = start_plain(same_python_without_threadctl())

    attached = attach_cli("attach", str(host.pid), env=env)

    assert attached.returncode == 0, attached.stderr
    assert attached.stdout.startswith(f"attached to process {host.pid} in ")
    record = audits(host, 1)[0]
    assert (record["action"], record["outcome"]) == ("attach", "started")
    assert record["caller_uid"] == os.getuid()
    monkeypatch.setenv("XDG_RUNTIME_DIR", env["XDG_RUNTIME_DIR"])
    with Client.for_pid(host.pid) as client:
        threads = {t.name: t for t in client.list_threads().threads}
        assert threads["spinner"].native_id == host.tid("spinner")
        assert threads["MainThread"].main
        assert threads["threadctl-serve"].protected
        spinner = threads["spinner"]
        result = client.stop_thread(
            ident=spinner.ident, expected_identity=spinner.identity, force=True, wait=10
        )
    assert (result.outcome, result.forced) == ("exited", True)
    host.expect("FINALLY spinner")
    host.send("lock?")
    assert host.expect("LOCK ") == "LOCK acquired"  # released on the way out

    again = attach_cli("attach", str(host.pid), env=env)
    assert again.returncode == 0, again.stderr
    assert "already serves threadctl" in again.stdout

    socket_path = Path(env["XDG_RUNTIME_DIR"]) / "threadctl" / f"{host.pid}.sock"
    assert socket_path.exists()
    detached = attach_cli("detach", str(host.pid), env=env)

    assert detached.returncode == 0, detached.stderr
    assert not socket_path.exists()
    assert host.proc.poll() is None
    actions = [(r["action"], r.get("outcome")) for r in audits(host, 3)]
    assert ("detach", "detached") in actions
    wait_until(lambda: "threadctl-agent" not in tasks(host.pid).values(), what="agent to end")
    assert attach_cli("detach", str(host.pid), env=env).returncode == 3  # nothing attached now
    assert not [line for line in host.stderr_lines if "Traceback" in line]


def test_one_shot_list_and_forced_stop_on_another_cpython(
    start_plain: StartPlain, env: dict[str, str]
) -> None:
    python = other_python()
    if python is None:
        pytest.skip("needs a second CPython 3.10-3.13 (pyenv) to run the target")
    host = start_plain(python)
    before = tasks(host.pid)

    listed = attach_cli("list", "--pid", str(host.pid), "--json", env=env)

    assert listed.returncode == 0, listed.stderr
    listing = json.loads(listed.stdout)
    assert any("one-shot job" in note for note in listing["process"]["notes"])
    assert listing["process"]["python_version"].startswith(python.rsplit("python", 1)[1])
    by_name = {t["name"]: t for t in listing["threads"]}
    assert by_name["spinner"]["native_id"] == host.tid("spinner")
    assert by_name["MainThread"]["main"] is True
    assert (by_name["MainThread"]["activity"], by_name["MainThread"]["activity_detail"]) == (
        "waiting",
        "acquire",
    )
    wait_until(lambda: tasks(host.pid) == before, what="the agent thread to end")

    stopped = attach_cli(
        "stop", str(host.tid("spinner")), "--pid", str(host.pid), "--force", "--wait", "10",
        "--reason", "runaway", "--json", env=env,
    )  # fmt: skip

    assert stopped.returncode == 0, stopped.stderr
    outcome = json.loads(stopped.stdout)
    assert (outcome["outcome"], outcome["forced"]) == ("exited", True)
    assert outcome["thread"]["native_id"] == host.tid("spinner")
    host.expect("FINALLY spinner")
    records = {r["action"]: r for r in audits(host, 2)}
    assert records["stop"]["reason"] == "runaway"
    assert records["stop"]["caller_uid"] == os.getuid()
    assert records["thread_ended"]["native_id"] == host.tid("spinner")
    sleeper = attach_cli("stop", str(host.tid("sleeper")), "--pid", str(host.pid), "--force",
                         "--wait", "10", env=env)  # fmt: skip
    assert sleeper.returncode == 0, sleeper.stderr
    again = {r["action"]: r for r in audits(host, 2)}
    assert again["thread_ended"]["native_id"] == host.tid("sleeper")
    assert again["thread_ended"]["caller"] == again["stop"]["caller"] != records["stop"]["caller"]
    assert not [line for line in host.stderr_lines if "Traceback" in line]

    cooperative = attach_cli("stop", str(host.pid), "--pid", str(host.pid), env=env)
    assert cooperative.returncode == 5
    assert "cooperative stop needs threadctl inside the process" in cooperative.stderr
    main = attach_cli("stop", str(host.pid), "--pid", str(host.pid), "--force", env=env)
    assert main.returncode == 5
    assert "main thread is protected" in main.stderr
    assert attach_cli("show", "1", "--pid", str(host.pid), env=env).returncode == 4
    pending = attach_cli("stop", str(host.pid), "--pid", str(host.pid), "--force", "--allow-main",
                         "--json", env=env)  # fmt: skip
    if listing["process"]["python_version"] >= "3.13":  # raised by a line trap: never pending
        assert pending.returncode == 5
        assert "cannot leave it pending; nothing was sent" in pending.stderr
    else:
        assert pending.returncode == 0, pending.stderr
        outcome = json.loads(pending.stdout)  # blocked in lock.acquire(): raised when it returns
        assert outcome["outcome"] == "force_pending"
        assert outcome["thread"]["stop_state"] == "force_pending"
        assert outcome["thread"]["blocked_in"]["function"] == "<module>"
        assert outcome["thread"]["blocked_in"]["filename"].endswith("plain_target.py")

    refused = attach_cli("attach", str(host.pid), env=env)
    assert refused.returncode == 5
    assert "one-shot mode" in refused.stderr
    assert host.proc.poll() is None


def test_one_shot_attach_and_detach_never_load_grpc(
    start_plain: StartPlain, env: dict[str, str]
) -> None:
    # grpc is 45 to 80 ms of a command's start-up, and these commands talk to
    # no server: the client package loads it only for the names that need it,
    # and attach finds grpc's files for the target without importing it.
    host = start_plain(same_python_without_threadctl())
    script = (
        "import sys\n"
        "from threadctl.client import cli\n"
        f"code = cli.main(['list', '--pid', '{host.pid}', '--attach', '--json'])\n"
        f"code |= cli.main(['attach', '{host.pid}']) | cli.main(['detach', '{host.pid}'])\n"
        "print('GRPC', sorted(m for m in sys.modules if m.split('.')[0] == 'grpc'))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True,
        timeout=DEADLINE, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    output, loaded = done.stdout.rsplit("GRPC ", 1)
    assert loaded.strip() == "[]"
    listing, attached = output.split("\n}\n", 1)
    assert {t["name"] for t in json.loads(listing + "}")["threads"]} >= {"MainThread", "spinner"}
    assert f"attached to process {host.pid}" in attached


def test_one_shot_uses_the_threadctl_a_process_already_has(
    start_host: Callable[..., Host], env: dict[str, str]
) -> None:
    host = start_host("workers.py")

    listed = attach_cli("list", "--pid", str(host.pid), "--json", env=env)
    stopped = attach_cli(
        "stop", str(host.tid("coop-1")), "--pid", str(host.pid), "--wait", "10", env=env
    )
    detach = attach_cli("detach", str(host.pid), env=env)

    by_name = {t["name"]: t for t in json.loads(listed.stdout)["threads"]}
    assert by_name["coop-1"]["cooperative"] is True  # threadctl's own registry
    assert by_name["threadctl-serve"]["protected"] is True
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith(f"thread {host.tid('coop-1')} (coop-1) exited")
    host.expect("EXITED coop-1")
    assert detach.returncode == 5  # its server belongs to the program
    assert "started by the program itself" in detach.stderr


@pytest.mark.parametrize(
    ("files", "args", "code", "message"),
    [
        (  # the process imported a grpcio older than threadctl supports
            {"grpc/__init__.py": "__version__ = '1.50.0'\n"},
            ("--import", "grpc"),
            5,
            "the process uses grpcio 1.50.0, threadctl needs grpcio>=1.66.2",
        ),
        (  # its own environment would provide an old protobuf first
            {"protobuf-4.25.0.dist-info/METADATA": "Name: protobuf\nVersion: 4.25.0\n"},
            (),
            5,
            "the process uses protobuf 4.25.0, threadctl needs protobuf>=5.27.2,<8",
        ),
        (  # a grpc of its own that fails to import
            {"grpc/__init__.py": "raise ImportError('broken on purpose')\n"},
            (),
            8,
            "importing threadctl inside the process failed: ImportError: broken on purpose",
        ),
    ],
)
def test_attach_refuses_grpc_or_protobuf_it_cannot_use(
    start_plain: StartPlain,
    env: dict[str, str],
    tmp_path: Path,
    files: dict[str, str],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    site = tmp_path / "site"
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    host = start_plain(same_python_without_threadctl(), *args, extra_env={"PYTHONPATH": str(site)})

    result = attach_cli("attach", str(host.pid), env=env)

    assert result.returncode == code
    assert message in result.stderr
    assert "one-shot mode" in result.stderr
    assert host.proc.poll() is None
    listed = attach_cli("list", "--pid", str(host.pid), env=env)  # one-shot still works
    assert listed.returncode == 0, listed.stderr


def test_a_process_that_is_not_python_is_refused_and_left_alone(env: dict[str, str]) -> None:
    with subprocess.Popen(["sleep", "60"]) as other:
        try:
            for command in (["attach", str(other.pid)], ["list", "--pid", str(other.pid)]):
                result = attach_cli(*command, env=env)
                assert result.returncode == 5
                assert result.stderr.startswith(f"threadctl: process {other.pid} (")
                assert "is not a CPython process; nothing was injected" in result.stderr
            assert other.poll() is None
        finally:
            other.kill()


@pytest.mark.parametrize(
    ("python_args", "extra_env", "why"),
    [
        ((), {"PYTHON_DISABLE_REMOTE_DEBUG": "1"}, "PYTHON_DISABLE_REMOTE_DEBUG is set"),
        (("-X", "disable_remote_debug"), {}, "-X disable_remote_debug"),
    ],
)
def test_a_process_that_opted_out_is_refused(
    start_plain: StartPlain,
    env: dict[str, str],
    python_args: tuple[str, ...],
    extra_env: dict[str, str],
    why: str,
) -> None:
    host = start_plain(
        same_python_without_threadctl(), python_args=python_args, extra_env=extra_env
    )

    for command in (["attach", str(host.pid)], ["list", "--pid", str(host.pid)]):
        result = attach_cli(*command, env=env)
        assert result.returncode == 5
        assert f"opted out of remote debugging ({why})" in result.stderr
    assert host.proc.poll() is None
    wait_until(lambda: "threadctl-agent" not in tasks(host.pid).values(), what="agent to end")


def test_a_process_that_exits_during_the_attach(
    start_plain: StartPlain, env: dict[str, str]
) -> None:
    host = start_plain(same_python_without_threadctl(), "--hold-gil", "30")
    host.send("hold")
    host.expect("HOLDING")  # the agent will wait for the GIL until we kill the process

    with subprocess.Popen(
        [THREADCTL, "list", "--pid", str(host.pid), "--attach"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as attach:
        wait_until(lambda: "threadctl-agent" in tasks(host.pid).values(), what="the agent")
        host.proc.kill()
        _, stderr = attach.communicate(timeout=DEADLINE)

    assert attach.returncode == 8
    assert stderr.startswith(f"threadctl: process {host.pid} exited during the attach")


def test_a_deadline_that_passes_cancels_the_job_and_leaves_the_process_running(
    start_plain: StartPlain, env: dict[str, str]
) -> None:
    host = start_plain(same_python_without_threadctl(), "--hold-gil", "3")
    host.send("hold")
    host.expect("HOLDING")

    result = attach_cli("stop", str(host.tid("spinner")), "--force", "--pid", str(host.pid),
                        "--timeout", "1.5", env=env)  # fmt: skip

    assert result.returncode == 8
    assert "deadline passed before the agent could run" in result.stderr
    assert "nothing ran" in result.stderr
    host.expect("RELEASED")
    wait_until(lambda: "threadctl-agent" not in tasks(host.pid).values(), what="agent to end")
    assert host.proc.poll() is None
    with open(f"/proc/{host.pid}/stat") as stat:
        assert stat.read().rsplit(")", 1)[1].split()[0] != "T"  # not left stopped
    assert "FINALLY spinner" not in host.seen  # the cancelled stop never ran
    host.send("lock?")
    assert host.expect("LOCK ") == "LOCK busy"  # the spinner still holds it


def test_one_shots_into_a_main_thread_busy_in_the_dynamic_loader_leave_it_alive(
    env: dict[str, str],
) -> None:
    # Before: the agent was loaded wherever the main thread stopped; inside
    # the loader (1 in 12 here) the process died ("Inconsistency detected by
    # ld.so"), and CI saw a gunicorn worker die of SIGSEGV the same way.
    host = Host([same_python_without_threadctl(), str(HOSTS / "loader_loop.py")], env)
    try:
        answers = [attach_cli("list", "--pid", str(host.pid), "--json", env=env) for _ in range(30)]
        alive = host.proc.poll() is None
    finally:
        host.stop()

    assert alive, f"exit {host.proc.returncode}: " + "\n".join(host.stderr_lines)
    failed = [a.stderr for a in answers if a.returncode != 0]
    assert failed == []
    assert all(json.loads(a.stdout)["process"]["pid"] == host.pid for a in answers)


@pytest.fixture
def never_safe(env: dict[str, str], tmp_path: Path) -> Iterator[Host]:
    """tests/hosts/never_safe.py: its main thread is never at a safe point."""
    library = tmp_path / "libc-spin.so"
    build_library(HOSTS / "libc_spin.c", library)
    host = Host([same_python_without_threadctl(), str(HOSTS / "never_safe.py"), str(library)], env)
    yield host
    host.stop()


def build_library(source: Path, library: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("needs a C compiler for the host's library")
    build = [compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(source)]
    subprocess.run(build, check=True)


def assert_untouched(host: Host) -> None:
    """Alive, not stopped, no tracer, nothing of the agent in it."""
    assert host.proc.poll() is None
    status = Path(f"/proc/{host.pid}/status").read_text()
    assert "\nState:\tR" in status or "\nState:\tS" in status, status
    assert "\nTracerPid:\t0\n" in status
    assert "threadctl-agent" not in Path(f"/proc/{host.pid}/maps").read_text()
    host.send("ping")
    host.expect("PONG")


def test_a_main_thread_never_at_a_safe_point_gets_nothing_called_and_a_clear_error(
    never_safe: Host, env: dict[str, str]
) -> None:
    result = attach_cli("list", "--pid", str(never_safe.pid), "--timeout", "1.5", env=env)

    assert result.returncode == 8
    assert result.stderr == (
        f"threadctl: nothing was loaded into process {never_safe.pid}: the main thread was never"
        " at a safe point (it was inside the C library (maybe in malloc), the last time); it"
        " runs on untouched, try again\n"
    )
    wait_until(lambda: "\nTracerPid:\t0\n" in Path(f"/proc/{never_safe.pid}/status").read_text())
    assert_untouched(never_safe)


def test_the_injector_cancelled_while_it_looks_for_a_safe_point_detaches_and_says_so(
    never_safe: Host,
) -> None:
    # Before: SIGTERM (or the kill on a deadline) ended it at once, also in
    # the middle of the system calls each try runs in the target.
    injector = Path(_env.__file__).with_name("_injector.py")
    child = subprocess.Popen(
        [sys.executable, "-I", str(injector), str(never_safe.pid), "/nonexistent.so", "60"],
        stdout=subprocess.PIPE,
        text=True,
    )
    status = Path(f"/proc/{never_safe.pid}/status")
    wait_until(lambda: f"\nTracerPid:\t{child.pid}\n" in status.read_text(), what="a try")
    child.terminate()
    out, _ = child.communicate(timeout=DEADLINE)

    assert child.returncode == 1
    assert out == "ERROR CANCELLED cancelled before the main thread was at a safe point\n"
    assert_untouched(never_safe)


def test_one_shots_into_a_process_that_receives_signals_all_the_time_succeed_and_leave_it_whole(
    env: dict[str, str],
) -> None:
    # Before: a signal during pyinjector's dlopen() call made it put the
    # registers back mid-call (6 one-shots in 8 failed, and the process died
    # soon: "Inconsistency detected by ld.so ... r_state == RT_ADD").
    host = Host([same_python_without_threadctl(), str(HOSTS / "signalled.py")], env)
    storming = threading.Event()

    def storm() -> None:  # about 5,000 signals a second
        while not storming.wait(0.0002):
            os.kill(host.pid, signal.SIGUSR1)

    sender = threading.Thread(target=storm)
    sender.start()
    try:
        answers = [attach_cli("list", "--pid", str(host.pid), env=env) for _ in range(6)]
    finally:
        storming.set()
        sender.join()
    try:
        host.send("load")  # the loader's lock is free and its state whole
        loaded = host.expect("LOADED ")
        alive = host.proc.poll() is None
    finally:
        host.stop()

    assert [a.stderr for a in answers if a.returncode != 0] == []
    assert alive
    assert int(loaded.split()[1]) > 0  # the signals were handled meanwhile


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the host's check is x86_64 assembly")
def test_one_shots_give_the_main_thread_back_its_vector_registers(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Before: pyinjector restores only the general-purpose registers, and the
    # dlopen()/dlclose() it runs on the main thread uses SSE/AVX: every
    # one-shot changed what C code there held in them (the interpreter died
    # of SIGSEGV about once in 400 one-shots of tests/hosts/loader_loop.py).
    library = tmp_path / "vector_hold.so"
    build_library(HOSTS / "vector_hold.c", library)
    host = Host([same_python_without_threadctl(), str(HOSTS / "vector_loop.py"), str(library)], env)
    try:
        answers = [attach_cli("list", "--pid", str(host.pid), env=env) for _ in range(3)]
        host.send("report")
        changed = host.expect("CHANGED ")
    finally:
        host.stop()

    assert [a.stderr for a in answers if a.returncode != 0] == []
    assert changed == "CHANGED 0"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user in a child")
def test_an_unprivileged_user_gets_the_ptrace_message(
    start_plain: StartPlain, env: dict[str, str]
) -> None:
    host = start_plain(same_python_without_threadctl())  # runs as root

    codes = _as_nobody(
        lambda: cli.main(["attach", str(host.pid), "--timeout", "5"]),
        lambda: cli.main(["list", "--pid", str(host.pid), "--attach"]),
    )

    for code, stderr in codes:
        assert code == 7
        assert stderr.startswith(f"threadctl: cannot attach to process {host.pid} (uid 0):")
        assert "ptrace not permitted for uid 65534" in stderr
        assert "same user or as root" in stderr
        assert "CAP_SYS_PTRACE" in stderr
    assert host.proc.poll() is None


def _as_nobody(*calls: Callable[[], int]) -> list[tuple[int, str]]:
    """Run each call in a forked child that dropped to uid/gid 65534 (the
    interpreter under /root is not readable for that user, so no exec)."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            results = []
            for call in calls:
                with contextlib.redirect_stderr(io.StringIO()) as stderr:
                    results.append((call(), stderr.getvalue()))
            os.write(write, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        data = pipe.read()
    os.waitpid(child, 0)
    return [tuple(result) for result in json.loads(data)]


def test_version_requirements_come_from_the_package_metadata() -> None:
    requirements = _env.requirements()

    assert requirements["grpcio"] == ["grpc", [1, 66, 2], None]
    assert requirements["protobuf"] == ["google.protobuf", [5, 27, 2], [8]]


def test_stop_of_a_stopped_process_is_refused(start_plain: StartPlain, env: dict[str, str]) -> None:
    host = start_plain(same_python_without_threadctl())
    os.kill(host.pid, signal.SIGSTOP)
    try:
        result = attach_cli("list", "--pid", str(host.pid), env=env)
    finally:
        os.kill(host.pid, signal.SIGCONT)

    assert result.returncode == 5
    assert f"process {host.pid} is stopped; resume it first" in result.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)"
)
def test_one_shot_reaches_a_process_with_its_own_tmp(env: dict[str, str]) -> None:
    """Like a service with systemd's PrivateTmp: another mount namespace."""
    # The program goes in as source text: the checkout itself may live under
    # /tmp, which the new mount hides.
    script = 'mount -t tmpfs threadctl-test /tmp && exec "$0" -c "$1"'
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
    source = (HOSTS / "plain_target.py").read_text()
    host = Host([*argv, same_python_without_threadctl(), source], env)
    try:
        stopped = attach_cli(
            "stop", str(host.tid("spinner")), "--force", "--wait", "10", "--pid", str(host.pid),
            env=env,
        )  # fmt: skip

        assert stopped.returncode == 0, stopped.stderr
        host.expect("FINALLY spinner")
        assert os.listdir(f"/proc/{host.pid}/root/tmp") == []  # its job directory is gone
        refused = attach_cli("attach", str(host.pid), env=env)
        assert refused.returncode == 5
        assert "another mount namespace" in refused.stderr
    finally:
        host.stop()


def test_one_shots_leave_the_process_as_they_found_it(env: dict[str, str]) -> None:
    host = Host([same_python_without_threadctl(), str(HOSTS / "bare_target.py")], env)
    try:
        modules_before = _modules(host)
        spinner, pid = str(host.tid("spinner")), str(host.pid)
        one_shots = [
            ("list", "--pid", pid),
            ("show", spinner, "--pid", pid),
            ("dump", "--pid", pid),
            ("tasks", "--pid", pid),
        ]
        untouched = _footprint(host.pid)
        for args in one_shots:  # warm-up: glibc keeps a thread's arena and stack cache
            assert attach_cli(*args, env=env).returncode == 0
        before = _footprint(host.pid)
        assert before["mapped files"] == untouched["mapped files"]  # no library left loaded

        for _ in range(4):
            for args in one_shots:
                done = attach_cli(*args, env=env)
                assert done.returncode == 0, done.stderr
        after = _footprint(host.pid)

        assert after == before
        assert not _threadctl_mapped(before)
        assert _modules(host) == modules_before
        stopped = attach_cli("stop", spinner, "--force", "--wait", "10", "--pid", pid, env=env)
        assert stopped.returncode == 0, stopped.stderr
        host.expect("FINALLY spinner")
        assert not _threadctl_mapped(_footprint(host.pid))
        assert _modules(host) == modules_before
    finally:
        host.stop()


def _threadctl_mapped(footprint: dict[str, object]) -> list[str]:
    files = footprint["mapped files"]
    assert isinstance(files, list)
    return [name for name in files if "threadctl" in name]


def _modules(host: Host) -> list[str]:
    host.send("modules?")
    return list(json.loads(host.expect("MODULES ")[len("MODULES ") :]))


def _footprint(pid: int) -> dict[str, object]:
    """What a one-shot could leave in process `pid`: mapped files (a library
    left loaded), open files, threads. Not anonymous mappings: the
    allocator maps and unmaps arenas as it likes (one more on 3.10 in CI),
    nor the kernel's own ([vvar_vclock] appears after a ptrace attach)."""
    wait_until(lambda: "threadctl-agent" not in tasks(pid).values(), what="the agent to end")
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {
        "mapped files": sorted(
            {line.split()[5] for line in maps if len(line.split()) > 5 and "/" in line.split()[5]}
        ),
        "files": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
    }


def test_one_shot_tasks_of_an_asyncio_program_without_threadctl(env: dict[str, str]) -> None:
    host = Host([same_python_without_threadctl(), str(HOSTS / "plain_asyncio.py")], env)
    try:
        modules_before = _modules(host)
        pid, side_tid = str(host.pid), host.tid("side-loop")

        listed = attach_cli("tasks", "--pid", pid, "--json", env=env)

        assert listed.returncode == 0, listed.stderr
        listing = json.loads(listed.stdout)
        assert any("addresses" in note for note in listing["process"]["notes"])
        loops = {loop["thread_native_id"]: loop for loop in listing["loops"]}
        assert set(loops) == {host.tid("MainThread"), side_tid}
        assert all(loop["running"] and loop["stalled_seconds"] == 0 for loop in loops.values())
        by_name = {task["name"]: task for task in listing["tasks"]}
        main_loop = loops[host.tid("MainThread")]["loop_id"]
        expected = {
            "waiter": ("asyncio.Queue.get", main_loop),
            "sleeper": ("asyncio.sleep", main_loop),
            "py-task": ("asyncio.Event.wait", main_loop),  # the pure-Python Task
            "side-ticker": ("asyncio.sleep", loops[side_tid]["loop_id"]),
        }
        for name, (awaiting, loop_id) in expected.items():
            assert (by_name[name]["awaiting"], by_name[name]["loop_id"]) == (awaiting, loop_id)
            assert by_name[name]["state"] == "pending"
        if sys.version_info >= (3, 11):
            supervisor = by_name["supervisor"]["task_id"]
            assert by_name["worker-1"]["awaited_by"] == [supervisor]

        side = attach_cli("tasks", "--pid", pid, "--thread", str(side_tid), "--stacks", env=env)
        assert side.returncode == 0, side.stderr
        assert "side-ticker" in side.stdout
        assert "waiter" not in side.stdout
        assert "side_ticker" in side.stdout  # its await chain
        missing = attach_cli("tasks", "--pid", pid, "--thread", "999999999", env=env)
        assert missing.returncode == 4
        assert missing.stderr.strip() == (
            "threadctl: no event loop with pending tasks runs in thread 999999999"
        )

        host.send("block")
        host.expect("BLOCKING")
        blocked = attach_cli("tasks", "--pid", pid, env=env)
        assert blocked.returncode == 0, blocked.stderr
        line = next(line for line in blocked.stdout.splitlines() if "BLOCKED" in line)
        assert f"thread {host.tid('MainThread')}" in line
        assert "(blocker)" in line
        assert "threadctl attach" in line  # not a cancel the one-shot cannot do
        host.send("unblock")

        dumped = attach_cli("dump", "--pid", pid, env=env)
        assert dumped.returncode == 0, dumped.stderr
        assert "side-ticker" in dumped.stdout
        assert _modules(host) == modules_before
        assert not _threadctl_mapped(_footprint(host.pid))
        host.send("ticks?")
        ticked = int(host.expect("TICKS ").split()[1])
        wait_until(lambda: _ticks(host) > ticked, what="the side loop to go on")
    finally:
        host.stop()
    assert not [line for line in host.stderr_lines if "Traceback" in line]


def _ticks(host: Host) -> int:
    host.send("ticks?")
    return int(host.expect("TICKS ").split()[1])
