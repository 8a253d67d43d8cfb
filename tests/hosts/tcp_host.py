"""Host: the control server also on TCP, configured from $THREADCTL_TEST_TCP
(JSON: tcp, cert, key, client_ca, subjects {name: role}, tokens [[name, token,
role]], insecure, allow_forced_stops; limits {name: value} sets threadctl._limits constants
before install, nofile lowers the soft limit of open files). Threads: `coop`
(stops when asked) and `other`. Prints `AUDIT <json>` for audit records and
`LOG <message>` for threadctl's other log records. Commands on stdin:
  open  open a file, print OPENED (or OPEN FAILED <reason>)
  fds   print FDS <number of open file descriptors>
  reload <json>  server.reload_credentials() with {"tokens": [[name, token, role]],
        "client_ca": path}: prints RELOADED (or RELOAD FAILED <error>)
Exits on stdin EOF.
"""

import json
import logging
import os
import resource
import sys
import threading

from _hostkit import say

import threadctl
from threadctl import Role, TLSConfig, TokenGrant, _limits

config = json.loads(os.environ["THREADCTL_TEST_TCP"])
for name, value in config.get("limits", {}).items():
    assert hasattr(_limits, name), name
    setattr(_limits, name, value)
if "nofile" in config:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (config["nofile"], hard))


class Print(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        audit = getattr(record, "threadctl_audit", None)
        say(f"AUDIT {json.dumps(audit)}" if audit else f"LOG {record.getMessage()}")


for name in ("threadctl", "threadctl.audit"):
    logging.getLogger(name).addHandler(Print())
    logging.getLogger(name).setLevel(logging.INFO)
logging.getLogger("threadctl.audit").propagate = False

tls = None
if config.get("cert"):
    tls = TLSConfig(
        cert_file=config["cert"],
        key_file=config["key"],
        client_ca_file=config.get("client_ca"),
        client_subjects={name: Role[role] for name, role in config.get("subjects", {}).items()},
    )
server = threadctl.install(
    tcp=config["tcp"],
    tls=tls,
    tokens=[TokenGrant(name, token, Role[role]) for name, token, role in config.get("tokens", [])],
    insecure_plaintext_tcp=config.get("insecure", False),
    allow_forced_stops=config.get("allow_forced_stops", True),
)


def coop() -> None:
    while not threadctl.sleep(60):
        pass
    say("EXITED coop")


release = threading.Event()
threads = [
    threading.Thread(target=coop, name="coop"),
    threading.Thread(target=release.wait, name="other"),
]
for thread in threads:
    thread.start()
say("READY " + json.dumps({"socket": str(server.socket_path), "tcp": server.tcp_address}))
for line in sys.stdin:
    if line.strip() == "open":
        try:
            with open(os.devnull):
                say("OPENED")
        except OSError as error:
            say(f"OPEN FAILED {error.strerror}")
    elif line.strip() == "fds":
        say(f"FDS {len(os.listdir('/proc/self/fd'))}")
    elif line.startswith("reload "):
        change = json.loads(line[len("reload ") :])
        new_tls = None
        if "client_ca" in change and tls is not None:
            new_tls = TLSConfig(tls.cert_file, tls.key_file, client_ca_file=change["client_ca"])
        tokens = change.get("tokens")
        try:
            server.reload_credentials(
                tls=new_tls,
                tokens=None
                if tokens is None
                else [TokenGrant(n, t, Role[r]) for n, t, r in tokens],
            )
        except (ValueError, OSError) as error:
            say(f"RELOAD FAILED {error}")
        else:
            say("RELOADED")
release.set()
for thread in threads:
    if thread.is_alive() and thread.name == "coop":
        threadctl.stop(thread.ident, wait=10)
server.close()
