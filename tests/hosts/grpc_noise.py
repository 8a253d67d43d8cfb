"""Host: does what makes gRPC's C core write to stderr (forks; TLS handshakes
that fail, done by the test), and prints nothing to stderr itself.

TCP with mutual TLS from $THREADCTL_TEST_TLS (JSON: cert, key, client_ca).
With $THREADCTL_TEST_GRPC_FIRST set it imports grpc and makes a channel
before importing threadctl, as a program that uses gRPC itself would.

Commands on stdin:
  fork N  fork N children that exit at once; prints `FORKED N` when all are reaped
  env     prints `ENV <GRPC_VERBOSITY here> <GRPC_VERBOSITY in a child process>`
Exits on stdin EOF.
"""

import json
import os
import subprocess
import sys
import warnings

from _hostkit import say

if os.environ.get("THREADCTL_TEST_GRPC_FIRST"):
    import grpc

    grpc.insecure_channel(f"unix:{os.devnull}").close()

import threadctl

# CPython 3.12+ warns on every fork of a process with threads: Python's line,
# not gRPC's, and this host forks on purpose.
warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)

config = json.loads(os.environ["THREADCTL_TEST_TLS"])
tls = threadctl.TLSConfig(
    cert_file=config["cert"],
    key_file=config["key"],
    client_ca_file=config["client_ca"],
    client_subjects={"ops-console": threadctl.Role.CONTROL},
)
server = threadctl.install(tcp="127.0.0.1:0", tls=tls)
say("READY " + json.dumps({"socket": str(server.socket_path), "tcp": server.tcp_address}))

for line in sys.stdin:
    command = line.split()
    if command[:1] == ["fork"]:
        for _ in range(int(command[1])):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        say(f"FORKED {command[1]}")
    elif command == ["env"]:
        child = subprocess.run(
            ["sh", "-c", 'echo "${GRPC_VERBOSITY-unset}"'], capture_output=True, text=True
        )
        say(f"ENV {os.environ.get('GRPC_VERBOSITY', 'unset')} {child.stdout.strip()}")
server.close()
