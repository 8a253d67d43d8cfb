"""threadctl.v1: gRPC stubs generated from threadctl.proto by the build (not committed)."""
