"""Safe by default: other users cannot reach the socket, a loosened socket
still needs the owner's token, TCP needs TLS and credentials, roles decide who
may stop, and the audit log names every caller (but never a token)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from support import DEADLINE, Host, cli_json, readme_blocks, run_cli
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

StartHost = Callable[..., Host]
NOBODY = 65534
as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root, to become another user (uid 65534) in a child"
)


def _as_nobody(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python `code` as uid/gid 65534 (the test runs as root). Modules are
    imported first, as root: that user cannot read the interpreter's files."""
    prelude = (
        "import os, socket, sys, grpc\n"
        "import threadctl.client.cli\n"
        "threadctl.client.cli._parser().format_help()\n"
        "from threadctl.v1 import threadctl_pb2, threadctl_pb2_grpc\n"
        f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + code, *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@as_root
def test_root_finds_another_users_process_by_pid_and_in_ps(env: dict[str, str]) -> None:
    # Before: "runs no threadctl server": only root's own directories were searched.
    code = (
        "import json, os, sys, threadctl\n"
        "install = threadctl.install  # its modules imported as root: nobody cannot read them\n"
        f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
        "server = install()\n"
        "print('READY ' + json.dumps({'socket': str(server.socket_path)}), flush=True)\n"
        "sys.stdin.read()\n"
        "server.close()\n"
    )
    theirs = {k: v for k, v in env.items() if k != "XDG_RUNTIME_DIR"}  # /tmp/threadctl-65534
    host = Host([sys.executable, "-c", code], theirs)
    try:
        listing = cli_json("list", "--pid", str(host.pid), env=env)
        processes = cli_json("ps", env=env)
    finally:
        host.stop()

    assert host.ready["socket"] == f"/tmp/threadctl-{NOBODY}/{host.pid}.sock"
    assert listing["process"]["pid"] == host.pid
    row = next(p for p in processes if p["pid"] == host.pid)
    assert row["user"] == pwd.getpwuid(NOBODY).pw_name
    assert row["address"] == f"unix:{host.ready['socket']}"


@as_root
def test_another_user_cannot_connect_to_the_default_socket(workers: Host) -> None:
    probe = _as_nobody(
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    print('EACCES')\n",
        workers.ready["socket"],
    )
    cli = _as_nobody(
        "import sys; from threadctl.client.cli import main; sys.exit(main(sys.argv[1:]))",
        "list", "--target", workers.ready["socket"],
    )  # fmt: skip

    assert probe.stdout.strip() == "EACCES", probe.stderr
    assert cli.returncode in (3, 7), cli.stderr
    assert cli.stderr.startswith("threadctl: ")
    assert "Traceback" not in cli.stderr


@pytest.fixture
def exposed() -> Iterator[Path]:
    """A directory anyone may enter: a mistake (pytest's temp dirs are 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="threadctl-exposed-", dir="/tmp"))
    os.chmod(directory, 0o777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@as_root
def test_a_loosened_socket_still_needs_the_owners_token(
    exposed: Path, start_host: StartHost
) -> None:
    socket_path = exposed / "app.sock"
    host = start_host("plain_script.py", launcher=["-m", "threadctl", "--socket", str(socket_path)])
    os.chmod(socket_path, 0o666)  # and another: anyone may connect
    token_file = socket_path.with_suffix(".token")

    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    raw = _as_nobody(
        "import sys, grpc\n"
        "from threadctl.v1 import threadctl_pb2 as pb, threadctl_pb2_grpc as pb_grpc\n"
        "with grpc.insecure_channel('unix:' + sys.argv[1]) as channel:\n"
        "    try:\n"
        "        stub = pb_grpc.ThreadControlStub(channel)\n"
        "        stub.ListThreads(pb.ListThreadsRequest(), timeout=10)\n"
        "    except grpc.RpcError as error:\n"
        "        print(error.code().name)\n",
        str(socket_path),
    )
    cli = _as_nobody(
        "import sys; from threadctl.client.cli import main; sys.exit(main(sys.argv[1:]))",
        "list", "--target", str(socket_path),
    )  # fmt: skip

    assert raw.stdout.strip() == "UNAUTHENTICATED", raw.stderr
    assert cli.returncode == 7, cli.stderr
    assert "cannot read" in cli.stderr
    assert ".token" in cli.stderr
    assert host.proc.poll() is None


def test_calls_without_the_token_are_unauthenticated_but_reflection_and_health_are_public(
    workers: Host,
) -> None:
    with grpc.insecure_channel(f"unix:{workers.ready['socket']}") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            pb_grpc.ThreadControlStub(channel).ListThreads(pb.ListThreadsRequest(), timeout=10)
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
            ProtoReflectionDescriptorDatabase,
        )

        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        health = health_pb2_grpc.HealthStub(channel)
        checked = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        watched = next(health.Watch(health_pb2.HealthCheckRequest(), timeout=10))

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "threadctl.v1.ThreadControl" in services
    assert checked.status == watched.status == health_pb2.HealthCheckResponse.SERVING


def test_the_token_is_not_sent_to_a_socket_of_another_owner(
    workers: Host, env: dict[str, str]
) -> None:
    token_file = Path(workers.ready["socket"]).with_suffix(".token")
    os.chown(token_file, NOBODY, NOBODY) if os.geteuid() == 0 else pytest.skip(
        "needs root to chown"
    )

    result = run_cli("list", "--pid", str(workers.pid), env=env)

    assert result.returncode == 7
    assert "not sending the token" in result.stderr


# --- TCP -------------------------------------------------------------------


READ_TOKEN = "reader-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"


def _tcp_host(start_host: StartHost, env: dict[str, str], config: dict[str, object]) -> Host:
    env["THREADCTL_TEST_TCP"] = json.dumps({"tcp": "127.0.0.1:0", **config})
    return start_host("tcp_host.py")


def _client_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in env.items() if k not in ("THREADCTL_TEST_TCP",)}
    return {**clean, **extra}


def test_mutual_tls_roles_decide_who_may_stop(
    start_host: StartHost, env: dict[str, str], pki: Path, tmp_path: Path
) -> None:
    host = _tcp_host(start_host, env, {
        "cert": str(pki / "server.pem"), "key": str(pki / "server.key"),
        "client_ca": str(pki / "ca.pem"),
        "subjects": {"ops-console": "CONTROL", "reader": "READ"},
    })  # fmt: skip
    target = host.ready["tcp"]
    client_env = _client_env(env)

    def cli(who: str, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--target", target, "--tls-ca", str(pki / "ca.pem"),
                       "--tls-cert", str(pki / f"{who}.pem"), "--tls-key", str(pki / f"{who}.key"),
                       "--tls-server-name", "localhost", env=client_env)  # fmt: skip

    reader_list = cli("reader", "list", "--json")
    coop_tid = next(
        t["native_id"] for t in json.loads(reader_list.stdout)["threads"] if t["name"] == "coop"
    )
    denied = cli("reader", "stop", str(coop_tid))
    stranger = cli("stranger", "list")
    allowed = cli("ops-console", "stop", str(coop_tid), "--wait", "10", "--reason", "mtls test")
    no_cert = run_cli("list", "--target", target, "--tls-ca", str(pki / "ca.pem"),
                      "--tls-server-name", "localhost", "--timeout", "3",
                      env=client_env)  # fmt: skip

    assert reader_list.returncode == 0, reader_list.stderr
    assert denied.returncode == 7
    assert "may only read" in denied.stderr
    assert stranger.returncode == 7
    assert allowed.returncode == 0, allowed.stderr
    host.expect("EXITED coop")
    assert no_cert.returncode == 3  # the TLS handshake itself fails without a certificate
    assert "--tls-cert and --tls-key" in no_cert.stderr  # a hint, beside gRPC's own words
    audit = [json.loads(line[6:]) for line in _lines(host, "AUDIT ") if "stop" in line]
    callers = {(a["caller"], a["outcome"]) for a in audit}
    assert ("certificate CN=reader", "refused") in callers  # by the interceptor, audited
    assert ("certificate CN=ops-console", "exited") in callers


def test_a_certificate_gets_only_the_role_its_own_subject_is_granted(
    start_host: StartHost, env: dict[str, str], pki: Path
) -> None:
    """Subjects are parsed as distinguished names (RFC 4514), never split on
    commas: a reader's certificate whose O holds an escaped ",CN=ops-console"
    stopped threads before (issue 18.2). Several CNs match no common-name
    grant; subject alternative names grant nothing."""
    host = _tcp_host(start_host, env, {
        "cert": str(pki / "server.pem"), "key": str(pki / "server.key"),
        "client_ca": str(pki / "ca.pem"),
        "subjects": {"ops-console": "CONTROL", "reader": "READ",
                     "CN=lister,OU=ops,O=Acme\\, Inc.": "READ"},
    })  # fmt: skip
    target = host.ready["tcp"]

    def cli(who: str, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--target", target, "--tls-ca", str(pki / "ca.pem"),
                       "--tls-cert", str(pki / f"{who}.pem"), "--tls-key", str(pki / f"{who}.key"),
                       "--tls-server-name", "localhost", env=_client_env(env))  # fmt: skip

    listing = json.loads(cli("reader", "list", "--json").stdout)
    coop = str(next(t["native_id"] for t in listing["threads"] if t["name"] == "coop"))
    stops = {who: cli(who, "stop", coop, "--force") for who in
             ("escaped-comma", "two-cns", "san", "no-cn", "org-unit")}  # fmt: skip
    lister = cli("org-unit", "list", "--json")
    after = json.loads(cli("reader", "list", "--json").stdout)

    def read_only(subject: str) -> str:
        return (
            f"threadctl: certificate {subject} may only read; StopThread needs the control role\n"
        )

    unauthenticated = (
        "threadctl: no valid credentials: the owner's token (read automatically by the threadctl"
        " CLI), a bearer token, or a client certificate\n"
    )
    assert {who: (r.returncode, r.stderr) for who, r in stops.items()} == {
        "escaped-comma": (7, read_only("O=x\\,CN=ops-console,CN=reader")),
        "two-cns": (7, unauthenticated),
        "san": (7, read_only("CN=reader")),
        "no-cn": (7, unauthenticated),
        "org-unit": (7, read_only("CN=lister,OU=ops,O=Acme\\, Inc.")),
    }
    assert lister.returncode == 0, lister.stderr
    assert next(t for t in after["threads"] if t["name"] == "coop")["stop_state"] == "none"


def _rfc4514(value: str) -> str:
    """`value` escaped the way OpenSSL prints subjects (XN_FLAG_RFC2253):
    specials with a backslash, bytes beyond ASCII and controls as \\XX."""
    out = []
    for index, char in enumerate(value):
        if (
            char in ',+"\\<>;'
            or (char in "# " and index == 0)
            or (char == " " and index == len(value) - 1)
        ):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) >= 0x7F:
            out.extend(f"\\{byte:02X}" for byte in char.encode())
        else:
            out.append(char)
    return "".join(out)


_ATTRIBUTE = st.tuples(st.sampled_from(["CN", "O", "OU", "C", "2.5.4.3"]), st.text(min_size=1))


@given(st.lists(st.lists(_ATTRIBUTE, min_size=1, max_size=3), max_size=4))
@settings(max_examples=300, derandomize=True, database=None)
def test_a_subject_parses_back_into_the_attributes_it_was_written_from(
    rdns: list[list[tuple[str, str]]],
) -> None:
    from threadctl._rpc._dn import parse_dn

    text = ",".join("+".join(f"{kind}={_rfc4514(value)}" for kind, value in rdn) for rdn in rdns)

    assert parse_dn(text) == tuple(frozenset(rdn) for rdn in rdns)


def test_tls_with_tokens_and_nothing_leaks_to_the_log(
    start_host: StartHost, env: dict[str, str], pki: Path, tmp_path: Path
) -> None:
    host = _tcp_host(start_host, env, {
        "cert": str(pki / "server.pem"), "key": str(pki / "server.key"),
        "tokens": [["ci-reader", READ_TOKEN, "READ"], ["ci-admin", ADMIN_TOKEN, "CONTROL"]],
    })  # fmt: skip
    admin_file = tmp_path / "admin.token"
    admin_file.write_text(ADMIN_TOKEN + "\n")
    tls = [
        "--target",
        host.ready["tcp"],
        "--tls-ca",
        str(pki / "ca.pem"),
        "--tls-server-name",
        "localhost",
    ]

    nothing = run_cli("list", *tls, env=_client_env(env))
    health = run_cli("health", *tls, env=_client_env(env))  # a probe needs no token
    wrong = run_cli("list", *tls, env=_client_env(env, THREADCTL_TOKEN="x" * 32))
    reader = cli_json("list", *tls, env=_client_env(env, THREADCTL_TOKEN=READ_TOKEN))
    coop = next(t for t in reader["threads"] if t["name"] == "coop")
    denied = run_cli(
        "stop", str(coop["native_id"]), *tls, env=_client_env(env, THREADCTL_TOKEN=READ_TOKEN)
    )
    stopped = run_cli("stop", str(coop["native_id"]), "--wait", "10", *tls,
                      "--token-file", str(admin_file),
                      env=_client_env(env))  # fmt: skip

    assert nothing.returncode == 7
    assert "no valid credentials" in nothing.stderr
    assert (health.returncode, health.stdout) == (0, "SERVING\n"), health.stderr
    assert wrong.returncode == 7
    assert denied.returncode == 7
    assert stopped.returncode == 0, stopped.stderr
    host.expect("EXITED coop")
    assert host.stop() == 0
    output = "\n".join(_lines(host, "") + host.stderr_lines)
    assert READ_TOKEN not in output
    assert ADMIN_TOKEN not in output
    assert '"caller": "token ci-admin"' in output


@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        ("tcp='127.0.0.1:0'", "a TCP listener needs TLS"),
        ("tcp='127.0.0.1:0', tls=TLSConfig('s.pem', 's.key')", "nobody could authenticate"),
        (
            "tcp='127.0.0.1:0', tls=TLSConfig('s.pem', 's.key', client_ca_file='ca.pem'),"
            " tokens=[TokenGrant('ci', 'x' * 32, Role.READ)]",
            "client certificates (client_ca_file) and tokens cannot be combined",
        ),
    ],
)
def test_tcp_settings_that_would_let_callers_in_or_lock_them_out_are_refused(
    env: dict[str, str], settings: str, refusal: str
) -> None:
    # Client certificates and tokens together: grpcio can only require a
    # certificate of every caller, so token callers failed the handshake.
    code = (
        "import threadctl\n"
        "from threadctl import Role, TLSConfig, TokenGrant\n"
        f"try:\n    threadctl.install({settings})\n"
        "except ValueError as error:\n    print(error)\n"
    )
    refused = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             timeout=30, check=False)  # fmt: skip

    assert refused.returncode == 0, refused.stderr
    assert refusal in refused.stdout


def test_plaintext_tcp_only_when_explicitly_insecure_and_loudly(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = _tcp_host(
        start_host, env, {"insecure": True, "tokens": [["ci", ADMIN_TOKEN, "CONTROL"]]}
    )

    assert any("INSECURE plaintext TCP" in line for line in _lines(host, "LOG "))
    listing = cli_json("list", "--target", host.ready["tcp"],
                       env=_client_env(env, THREADCTL_TOKEN=ADMIN_TOKEN))  # fmt: skip
    assert {"coop", "other"} <= {t["name"] for t in listing["threads"]}


def test_unix_socket_audit_names_the_local_caller(
    start_host: StartHost, env: dict[str, str]
) -> None:
    host = start_host("forcible.py", "coop")

    stopped = run_cli(
        "stop", str(host.tid("coop")), "--wait", "10", "--pid", str(host.pid), env=env
    )

    assert stopped.returncode == 0, stopped.stderr
    record = json.loads(host.expect("AUDIT ")[len("AUDIT ") :])
    assert record["action"] == "stop"
    assert record["caller"] == f"unix socket (owner's token, claimed uid {os.geteuid()})"


@pytest.mark.parametrize(
    ("sent", "recorded"), [("4242", "4242"), ("0 (root, really)", "?"), (None, "?")]
)
def test_the_uid_a_local_client_sends_is_recorded_as_claimed(
    start_host: StartHost, env: dict[str, str], sent: str | None, recorded: str
) -> None:
    """gRPC gives the server no peer uid for a Unix socket: the uid in the
    metadata is whatever the client says, and the audit log says so."""
    host = _tcp_host(start_host, env, {"tokens": [["ci", ADMIN_TOKEN, "CONTROL"]],
                                       "insecure": True})  # fmt: skip
    path = Path(host.ready["socket"])
    metadata = [("authorization", f"Bearer {path.with_suffix('.token').read_text().strip()}")]
    metadata += [("x-threadctl-uid", sent)] if sent is not None else []
    with grpc.insecure_channel(f"unix:{path}") as channel:
        stub = pb_grpc.ThreadControlStub(channel)
        listing = stub.ListThreads(pb.ListThreadsRequest(), timeout=10, metadata=metadata)
        coop = next(t for t in listing.threads if t.name == "coop")
        request = pb.StopThreadRequest(thread=pb.ThreadSelector(ident=coop.ident), wait_seconds=10)
        stub.StopThread(request, timeout=20, metadata=metadata)

    record = json.loads(host.expect("AUDIT ")[len("AUDIT ") :])
    assert record["caller"] == f"unix socket (owner's token, claimed uid {recorded})"
    assert record["outcome"] == "exited"


FORCE_DISABLED = (
    "forced stops are disabled in this process (install(allow_forced_stops=False)); nothing was"
    " stopped"
)


def test_every_refused_stop_is_audited(start_host: StartHost, env: dict[str, str]) -> None:
    """Refusals decided by the servicer (bad input, forced stops disabled) and
    by role are audited; a call without credentials is not (anyone could
    fill the host's log)."""
    host = _tcp_host(start_host, env, {"tokens": [["ci-reader", READ_TOKEN, "READ"]],
                                       "insecure": True, "allow_forced_stops": False})  # fmt: skip
    path = Path(host.ready["socket"])
    owner = [("authorization", f"Bearer {path.with_suffix('.token').read_text().strip()}")]
    reader = [("authorization", f"Bearer {READ_TOKEN}")]
    one = pb.ThreadSelector(ident=1)  # no refusal below gets as far as looking for it
    stop, stop_all = pb.StopThreadRequest, pb.StopAllThreadsRequest
    local = "unix socket (owner's token, claimed uid ?)"
    # (who, request, status, (action, caller, mode, error) of the record or None)
    cases = [
        (owner, stop(thread=one, mode=pb.STOP_MODE_FORCE), "FAILED_PRECONDITION",
         ("stop", local, "force", FORCE_DISABLED)),
        (owner, stop(thread=one, mode=99), "INVALID_ARGUMENT",
         ("stop", local, "unknown (99)", "unknown stop mode 99")),
        (owner, stop(thread=one, wait_seconds=-1), "INVALID_ARGUMENT",
         ("stop", local, "cooperative", "wait must be between 0 and 3600 seconds, not -1.0")),
        (owner, stop(thread=one, expected_identity="x"), "INVALID_ARGUMENT",
         ("stop", local, "cooperative",
          "malformed expected_identity 'x' (use ThreadRecord.identity from a listing)")),
        (owner, stop(), "INVALID_ARGUMENT",
         ("stop", local, "cooperative",
          "thread: set a non-zero ident, native_id or tid_or_ident, or a name")),
        (owner, stop(thread=one, reason="a\x1b[2Jb"), "INVALID_ARGUMENT",
         ("stop", local, "cooperative", "reason must not contain control characters")),
        (owner, stop_all(force=True), "FAILED_PRECONDITION",
         ("stop_all", local, None, FORCE_DISABLED)),
        (owner, stop_all(grace_seconds=-1), "INVALID_ARGUMENT",
         ("stop_all", local, None, "grace must be between 0 and 3600 seconds, not -1.0")),
        (reader, stop(thread=one), "PERMISSION_DENIED",
         ("stop", "token ci-reader", None,
          "token ci-reader may only read; StopThread needs the control role")),
        ([], stop(thread=one), "UNAUTHENTICATED", None),
    ]  # fmt: skip
    codes, records = [], []
    with (
        grpc.insecure_channel(f"unix:{path}") as unix,
        grpc.insecure_channel(host.ready["tcp"]) as tcp,
    ):
        for who, request, _status, expected in cases:
            method = "StopThread" if isinstance(request, stop) else "StopAllThreads"
            call = (tcp if who is reader else unix).unary_unary(
                f"/threadctl.v1.ThreadControl/{method}",
                request_serializer=type(request).SerializeToString,
            )
            with pytest.raises(grpc.RpcError) as refused:
                call(request, timeout=10, metadata=who)
            codes.append(refused.value.code().name)
            if expected is not None:
                records.append(json.loads(host.expect("AUDIT ")[len("AUDIT ") :]))
    host.send("fds")  # a round trip: any record of the last call is printed by now
    host.expect("FDS ")

    assert codes == [status for _who, _request, status, _expected in cases]
    assert [(r["action"], r["caller"], r.get("mode"), r["error"]) for r in records] == [
        expected for *_, expected in cases if expected is not None
    ]
    assert {r["outcome"] for r in records} == {"refused"}
    assert (records[0]["ident"], records[4]["ident"]) == (1, None)
    assert records[5]["reason"] == "a\x1b[2Jb"
    assert _lines(host, "AUDIT ") == []


def _lines(host: Host, prefix: str) -> list[str]:
    """Lines with `prefix` the host printed so far (after a round trip, so they arrived)."""
    while True:
        try:
            host.seen.append(host.lines.get_nowait())
        except Exception:
            break
    return [line for line in host.seen if line.startswith(prefix)]


@pytest.mark.parametrize(
    "example", readme_blocks('tcp="0.0.0.0:7443"'), ids=["mutual-tls", "tokens"]
)
def test_the_readmes_tcp_examples_run_as_written(
    example: str, env: dict[str, str], pki: Path, tmp_path: Path
) -> None:
    for name in ("server.pem", "server.key", "ca.pem"):
        (tmp_path / name).write_bytes((pki / name).read_bytes())
    done = subprocess.run(
        [sys.executable, "-c", example + "print(server.tcp_address)\nserver.close()\n"],
        cwd=tmp_path, env={**env, "THREADCTL_CI_TOKEN": READ_TOKEN},
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0.0.0.0:7443"


def test_certificate_files_replaced_in_place_serve_new_connections(
    start_host: StartHost, env: dict[str, str], pki: Path, other_pki: Path, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    for name in ("server.pem", "server.key"):
        (live / name).write_bytes((pki / name).read_bytes())
    host = _tcp_host(start_host, env, {
        "cert": str(live / "server.pem"), "key": str(live / "server.key"),
        "tokens": [["ci", ADMIN_TOKEN, "CONTROL"]],
    })  # fmt: skip

    def listing(ca: Path) -> subprocess.CompletedProcess[str]:
        return run_cli("list", "--target", host.ready["tcp"], "--tls-ca", str(ca),
                       "--tls-server-name", "localhost", "--timeout", "5",
                       env=_client_env(env, THREADCTL_TOKEN=ADMIN_TOKEN))  # fmt: skip

    before = listing(pki / "ca.pem")
    for name in ("server.pem", "server.key"):  # as a renewal does: write aside, rename
        (live / f"{name}.new").write_bytes((other_pki / name).read_bytes())
        os.replace(live / f"{name}.new", live / name)
    renewed = listing(other_pki / "ca.pem")
    old_ca = listing(pki / "ca.pem")

    assert before.returncode == 0, before.stderr
    assert renewed.returncode == 0, renewed.stderr  # no restart
    assert old_ca.returncode == 3  # the old CA no longer vouches for the server
    assert host.proc.poll() is None


def test_tokens_rotate_without_a_restart(
    start_host: StartHost, env: dict[str, str], pki: Path
) -> None:
    host = _tcp_host(start_host, env, {
        "cert": str(pki / "server.pem"), "key": str(pki / "server.key"),
        "tokens": [["ci", ADMIN_TOKEN, "CONTROL"]],
    })  # fmt: skip
    tls = ["--target", host.ready["tcp"], "--tls-ca", str(pki / "ca.pem"),
           "--tls-server-name", "localhost"]  # fmt: skip

    def listing(token: str) -> int:
        return run_cli("list", *tls, env=_client_env(env, THREADCTL_TOKEN=token)).returncode

    new_token = "n" * 32
    host.send("reload " + json.dumps({"tokens": [["ci-2", new_token, "READ"]]}))
    reloaded = host.expect("RELOAD")
    host.send("reload " + json.dumps({"client_ca": str(pki / "ca.pem")}))
    refused = host.expect("RELOAD")

    assert reloaded == "RELOADED"
    assert (listing(new_token), listing(ADMIN_TOKEN)) == (0, 7)
    assert refused.startswith("RELOAD FAILED client certificates (client_ca_file) and tokens")
