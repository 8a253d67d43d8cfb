"""Host: a server, a thread that ignores its stop flag, and a main thread that
ends the way the test asks, for shutdown and stale-socket tests.

argv: [--socket PATH] [--sigterm-exits]
  --socket PATH    install(socket_path=PATH) instead of the default path;
                   if a live server already answers there, print
                   `READY {"error": ...}` and wait for EOF
  --sigterm-exits  SIGTERM raises SystemExit in the main thread (as many
                   services do), so the interpreter shuts down normally
Commands on stdin: `return` (main returns), `raise` (main raises
RuntimeError); EOF closes the server and returns.
"""

import json
import signal
import sys
import threading
from pathlib import Path

from _hostkit import say

import threadctl

args = sys.argv[1:]
socket_path = args[args.index("--socket") + 1] if "--socket" in args else None
if "--sigterm-exits" in args:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))

try:
    server = threadctl.install(socket_path=socket_path)
except threadctl.SocketInUse as error:
    say("READY " + json.dumps({"error": f"{type(error).__name__}: {error}"}))
    sys.stdin.read()
    sys.exit(0)

never = threading.Event()
stubborn = threading.Thread(target=never.wait, name="stubborn", daemon=True)
stubborn.start()
token = Path(server.token_path)
say(
    "READY "
    + json.dumps(
        {
            "socket": str(server.socket_path),
            "token_path": str(token),
            "token": token.read_text(),
            "threads": {"stubborn": {"ident": stubborn.ident, "native_id": stubborn.native_id}},
        }
    )
)
for line in sys.stdin:
    command = line.strip()
    if command == "return":
        say("RETURNING")
        break  # the script ends; the server is left to the interpreter's exit
    if command == "raise":
        say("RAISING")
        raise RuntimeError("the host's main thread failed")
else:
    server.close()
