"""Server reflection in both protocol versions, v1 and v1alpha, from one servicer.

grpcio-reflection implements only `grpc.reflection.v1alpha`. buf, grpc-go
and grpc-js ask for `grpc.reflection.v1` first (and fall back on
UNIMPLEMENTED), and clients that speak only v1 fail. The two versions'
messages are the same on the wire (same names, fields and numbers; only the
package differs), so v1 is grpcio-reflection's servicer behind a second
method name, with v1alpha's message classes doing the (de)serialising.

A client that asks what `grpc.reflection.v1.ServerReflection` is gets the
v1alpha file renamed into package `grpc.reflection.v1`. Descriptors come from
a pool of our own, never the host's default pool: a program that also loads
the real v1 file (a newer grpcio-reflection, its own stubs) must not collide
with ours, and nothing of ours may change what the host's pool holds.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

_V1ALPHA_PACKAGE = reflection_pb2.DESCRIPTOR.package  # grpc.reflection.v1alpha
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
SERVICE_NAMES = (V1_SERVICE_NAME, reflection.SERVICE_NAME)


def enable(
    files: Iterable[FileDescriptor], service_names: Iterable[str], server: grpc.Server
) -> None:
    """Serve reflection (both versions) on `server`, describing the services
    `service_names`, defined in `files`, and reflection itself."""
    pool = _pool([*files, reflection_pb2.DESCRIPTOR])
    servicer = reflection.ReflectionServicer((*service_names, *SERVICE_NAMES), pool=pool)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                V1_SERVICE_NAME,
                {
                    "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                        servicer.ServerReflectionInfo,
                        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
                    )
                },
            ),
        )
    )


def _pool(files: Iterable[FileDescriptor]) -> descriptor_pool.DescriptorPool:
    """A new pool holding `files`, their dependencies, and the v1 file."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: FileDescriptor) -> None:  # dependencies first, as the pool requires
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        pool.AddSerializedFile(file.serialized_pb)
        added.add(file.name)

    for file in files:
        add(file)
    pool.AddSerializedFile(_v1_file().SerializeToString())
    return pool


def _v1_file() -> descriptor_pb2.FileDescriptorProto:
    """The v1alpha reflection file, renamed into package grpc.reflection.v1."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = V1_PACKAGE
    proto.ClearField("options")  # v1alpha's language packages
    old, new = f".{_V1ALPHA_PACKAGE}.", f".{V1_PACKAGE}."

    def renamed(type_name: str) -> str:
        return new + type_name[len(old) :] if type_name.startswith(old) else type_name

    messages = list(proto.message_type)
    while messages:
        message = messages.pop()
        messages.extend(message.nested_type)
        for field in message.field:
            if field.type_name:  # message and enum fields only
                field.type_name = renamed(field.type_name)
    for service in proto.service:
        for method in service.method:
            method.input_type = renamed(method.input_type)
            method.output_type = renamed(method.output_type)
    return proto
