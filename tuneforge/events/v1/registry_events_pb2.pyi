from tuneforge.registry.v1 import model_pb2 as _model_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelEvent(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _model_pb2.Model
    def __init__(self, model: _Optional[_Union[_model_pb2.Model, _Mapping]] = ...) -> None: ...

class ModelVersionEvent(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: _model_pb2.ModelVersion
    def __init__(self, model_version: _Optional[_Union[_model_pb2.ModelVersion, _Mapping]] = ...) -> None: ...

class DerivationEvent(_message.Message):
    __slots__ = ("derivation",)
    DERIVATION_FIELD_NUMBER: _ClassVar[int]
    derivation: _model_pb2.Derivation
    def __init__(self, derivation: _Optional[_Union[_model_pb2.Derivation, _Mapping]] = ...) -> None: ...

class ModelAliasEvent(_message.Message):
    __slots__ = ("alias", "previous_version")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    alias: _model_pb2.ModelAlias
    previous_version: str
    def __init__(self, alias: _Optional[_Union[_model_pb2.ModelAlias, _Mapping]] = ..., previous_version: _Optional[str] = ...) -> None: ...
