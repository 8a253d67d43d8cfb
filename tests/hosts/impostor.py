"""Host: another local user (uid 65534) posing as a threadctl server.

Started as root: it imports what it needs first (that user cannot read the
interpreter's files), then becomes uid/gid 65534 and serves gRPC on the Unix
socket `--socket PATH`, answering ListThreads for `--pid` with one thread
named "impostor" and recording the `authorization` metadata of every call.

Options:
  --socket PATH           where to listen (its directory must exist)
  --pid PID               the PID the fake listing claims
  --token PATH            also write a token file there (as 65534)
  --link LINK TARGET      a symlink LINK -> TARGET, made as 65534
  --flip LINK A B         keep replacing the symlink LINK, A and B in turn
                          (rename over it, so it always exists)
Commands on stdin: `calls` prints CALLS <json list of the authorization
values received>. Exits on stdin EOF.
"""

import argparse
import json
import os
import sys
import threading
from concurrent import futures

import grpc
from _hostkit import say

from threadctl.v1 import threadctl_pb2 as pb

NOBODY = 65534
parser = argparse.ArgumentParser()
parser.add_argument("--socket", required=True)
parser.add_argument("--pid", type=int, default=1)
parser.add_argument("--token")
parser.add_argument("--link", nargs=2, action="append", default=[])
parser.add_argument("--flip", nargs=3)
args = parser.parse_args()

received: list[str] = []
lock = threading.Lock()


def list_threads(request: pb.ListThreadsRequest, context: grpc.ServicerContext) -> bytes:
    metadata = dict(context.invocation_metadata())
    with lock:
        received.append(str(metadata.get("authorization", "")))
    process = pb.ProcessInfo(pid=args.pid, argv=["impostor"], python_version="3")
    thread = pb.ThreadRecord(name="impostor", ident=1, native_id=args.pid, identity="1.00000000")
    return pb.ListThreadsResponse(process=process, threads=[thread]).SerializeToString()


class Handler(grpc.GenericRpcHandler):
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            list_threads, request_deserializer=pb.ListThreadsRequest.FromString
        )


# Made as root (the lazy imports of concurrent.futures need the interpreter's
# files); everything from the socket on is made as the other user.
server = grpc.server(futures.ThreadPoolExecutor(4), handlers=[Handler()])
os.setgroups([])
os.setgid(NOBODY)
os.setuid(NOBODY)
server.add_insecure_port(f"unix:{args.socket}")
server.start()
if args.token:
    with open(args.token, "w") as token_file:
        token_file.write("impostor-token-0123456789\n")
for link, target in args.link:
    os.symlink(target, link)
stop = threading.Event()


def flip(link: str, first: str, second: str) -> None:
    temporary = f"{link}.new"
    while not stop.is_set():
        for target in (first, second):
            os.symlink(target, temporary)
            os.replace(temporary, link)


if args.flip:
    os.symlink(args.flip[1], args.flip[0])
    threading.Thread(target=flip, args=args.flip, daemon=True).start()
say("READY " + json.dumps({"uid": os.getuid()}))
for line in sys.stdin:
    if line.strip() == "calls":
        with lock:
            say("CALLS " + json.dumps(received))
stop.set()
server.stop(None)
