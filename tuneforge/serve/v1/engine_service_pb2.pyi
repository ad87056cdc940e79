from tuneforge.serve.v1 import deployment_pb2 as _deployment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("deployment_uid", "messages", "prompt", "max_tokens", "temperature", "top_p", "stop", "seed", "max_context", "stream")
    DEPLOYMENT_UID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    deployment_uid: str
    messages: _containers.RepeatedCompositeFieldContainer[_deployment_pb2.ChatMessage]
    prompt: str
    max_tokens: int
    temperature: float
    top_p: float
    stop: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    max_context: int
    stream: bool
    def __init__(self, deployment_uid: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_deployment_pb2.ChatMessage, _Mapping]]] = ..., prompt: _Optional[str] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., stop: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., max_context: _Optional[int] = ..., stream: _Optional[bool] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("delta", "finish_reason", "usage", "model_version")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    delta: str
    finish_reason: str
    usage: _deployment_pb2.Usage
    model_version: str
    def __init__(self, delta: _Optional[str] = ..., finish_reason: _Optional[str] = ..., usage: _Optional[_Union[_deployment_pb2.Usage, _Mapping]] = ..., model_version: _Optional[str] = ...) -> None: ...
