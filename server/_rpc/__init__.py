"""The control server's RPC layer: the only host-side package that imports
grpc, grpc_health, grpc_reflection, protobuf or the generated stubs.

Here: install() and the server's life (_install, _shutdown, _executor, the
gRPC logging set-up that must precede grpc's import), the servicer and its
stream (_servicer, _watch), callers' authentication and limits
(_interceptors, _auth, _dn, _tcp, _decoding), reflection, the mapping of
domain results to messages (_proto_mapping), the in-process API that answers
with the client's types (_api), and attaching a server to a running process
(_attach_target).

The rest of the host package (registry, stops, snapshots, waits, signals:
the domain) imports none of that, so it can be used, and shipped into a
target by one-shot jobs, without grpc. ruff's banned-api rule (TID251,
pyproject.toml) enforces it. Importing this package itself imports nothing.
"""
