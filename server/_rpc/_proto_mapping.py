"""Domain records to protobuf messages, from their fields (_fields)."""

from __future__ import annotations

from threadctl._control import StopResult
from threadctl._fields import record_fields, stop_all_fields, stop_fields
from threadctl._snapshot import ThreadSnapshot
from threadctl._stop_all import StopAllResult
from threadctl.v1 import threadctl_pb2 as pb


def to_proto(thread: ThreadSnapshot) -> pb.ThreadRecord:
    """The protobuf record of a snapshot."""
    return pb.ThreadRecord(**record_fields(thread))


def stop_response(result: StopResult) -> pb.StopThreadResponse:
    return pb.StopThreadResponse(**stop_fields(result))


def stop_all_response(result: StopAllResult) -> pb.StopAllThreadsResponse:
    return pb.StopAllThreadsResponse(**stop_all_fields(result))
