"""Every RPC of every public service, read from the generated descriptors (so a new RPC is covered
without touching the harnesses), and the raw calls the harnesses make."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message

from tuneforge.data.v1 import augmentation_service_pb2, data_service_pb2
from tuneforge.eval.v1 import eval_service_pb2
from tuneforge.iam.v1 import iam_service_pb2
from tuneforge.registry.v1 import registry_service_pb2
from tuneforge.serve.v1 import serve_service_pb2
from tuneforge.train.v1 import train_service_pb2

# service descriptor -> the suite endpoint that serves it. The serve service's EngineService is
# internal (serving processes, a shared token), not an API for keys: it is not listed.
SERVED_BY = {
    "tuneforge.registry.v1.RegistryService": ("registry", registry_service_pb2),
    "tuneforge.data.v1.DataService": ("data", data_service_pb2),
    "tuneforge.data.v1.AugmentationService": ("data", augmentation_service_pb2),
    "tuneforge.train.v1.TrainService": ("train", train_service_pb2),
    "tuneforge.eval.v1.EvalService": ("eval", eval_service_pb2),
    "tuneforge.serve.v1.ServeService": ("serve", serve_service_pb2),
    "tuneforge.iam.v1.IamService": ("iam", iam_service_pb2),
}


@dataclass(frozen=True)
class Rpc:
    service: str  # the suite endpoint
    method: descriptor.MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def name(self) -> str:
        return self.method.name

    def new_request(self) -> Message:
        return message_factory.GetMessageClass(self.method.input_type)()

    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.output_type)


def all_rpcs() -> list[Rpc]:
    out = []
    for full_name, (service, module) in SERVED_BY.items():
        described = module.DESCRIPTOR.services_by_name[full_name.rsplit(".", 1)[1]]
        out.extend(Rpc(service, m) for m in described.methods)
    return out


def call(
    channel: grpc.Channel, rpc: Rpc, requests: Iterable[Message], *, token: str | None, timeout: float = 20
) -> Any:
    """Send `requests` (one unless the method is client-streamed) with `token` (None: no key);
    return the response (the first streamed one), or raise grpc.RpcError."""
    metadata = [] if token is None else [("authorization", f"Bearer {token}")]
    serialize = lambda m: m.SerializeToString()  # noqa: E731
    parse = rpc.response_class().FromString
    method = rpc.method
    if method.client_streaming:
        stub = channel.stream_stream if method.server_streaming else channel.stream_unary
        callable_ = stub(rpc.path, request_serializer=serialize, response_deserializer=parse)
        result = callable_(iter(list(requests)), timeout=timeout, metadata=metadata)
    else:
        request = next(iter(requests))
        stub = channel.unary_stream if method.server_streaming else channel.unary_unary
        callable_ = stub(rpc.path, request_serializer=serialize, response_deserializer=parse)
        result = callable_(request, timeout=timeout, metadata=metadata)
    if method.server_streaming:
        try:
            return next(iter(result))
        finally:
            result.cancel()
    return result


def string_fields(message: Message, depth: int = 2) -> Iterator[tuple[Message, descriptor.FieldDescriptor]]:
    """Every singular string field of `message` and of its singular sub-messages (to `depth`)."""
    for field in message.DESCRIPTOR.fields:
        if field.is_repeated:
            continue
        if field.type == field.TYPE_STRING:
            yield message, field
        elif field.type == field.TYPE_MESSAGE and depth > 0 and not field.message_type.GetOptions().map_entry:
            if field.message_type.full_name.startswith("google.protobuf."):
                continue
            yield from string_fields(getattr(message, field.name), depth - 1)
