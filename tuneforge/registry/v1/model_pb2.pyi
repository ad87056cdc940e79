import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tuneforge.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelVersionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_VERSION_KIND_UNSPECIFIED: _ClassVar[ModelVersionKind]
    MODEL_VERSION_KIND_FULL: _ClassVar[ModelVersionKind]
    MODEL_VERSION_KIND_LORA_ADAPTER: _ClassVar[ModelVersionKind]
    MODEL_VERSION_KIND_OTHER: _ClassVar[ModelVersionKind]

class DerivationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DERIVATION_STATE_UNSPECIFIED: _ClassVar[DerivationState]
    DERIVATION_STATE_QUEUED: _ClassVar[DerivationState]
    DERIVATION_STATE_RUNNING: _ClassVar[DerivationState]
    DERIVATION_STATE_SUCCEEDED: _ClassVar[DerivationState]
    DERIVATION_STATE_FAILED: _ClassVar[DerivationState]
    DERIVATION_STATE_CANCELLED: _ClassVar[DerivationState]
MODEL_VERSION_KIND_UNSPECIFIED: ModelVersionKind
MODEL_VERSION_KIND_FULL: ModelVersionKind
MODEL_VERSION_KIND_LORA_ADAPTER: ModelVersionKind
MODEL_VERSION_KIND_OTHER: ModelVersionKind
DERIVATION_STATE_UNSPECIFIED: DerivationState
DERIVATION_STATE_QUEUED: DerivationState
DERIVATION_STATE_RUNNING: DerivationState
DERIVATION_STATE_SUCCEEDED: DerivationState
DERIVATION_STATE_FAILED: DerivationState
DERIVATION_STATE_CANCELLED: DerivationState

class Model(_message.Message):
    __slots__ = ("name", "uid", "display_name", "description", "tags", "create_time", "update_time", "version_count", "latest_version")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    display_name: str
    description: str
    tags: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    version_count: int
    latest_version: str
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version_count: _Optional[int] = ..., latest_version: _Optional[str] = ...) -> None: ...

class Lineage(_message.Message):
    __slots__ = ("base_model", "parent_version", "source_job", "dataset_versions", "hyperparameters")
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_JOB_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    base_model: str
    parent_version: str
    source_job: str
    dataset_versions: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatasetVersionRef]
    hyperparameters: _struct_pb2.Struct
    def __init__(self, base_model: _Optional[str] = ..., parent_version: _Optional[str] = ..., source_job: _Optional[str] = ..., dataset_versions: _Optional[_Iterable[_Union[_common_pb2.DatasetVersionRef, _Mapping]]] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("name", "uid", "description", "tags", "kind", "files", "total_size_bytes", "lineage", "metrics", "aliases", "create_time", "update_time", "catalog")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CATALOG_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    description: str
    tags: _containers.ScalarMap[str, str]
    kind: ModelVersionKind
    files: _containers.RepeatedCompositeFieldContainer[_common_pb2.FileEntry]
    total_size_bytes: int
    lineage: Lineage
    metrics: _containers.ScalarMap[str, float]
    aliases: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    catalog: CatalogInfo
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., kind: _Optional[_Union[ModelVersionKind, str]] = ..., files: _Optional[_Iterable[_Union[_common_pb2.FileEntry, _Mapping]]] = ..., total_size_bytes: _Optional[int] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., aliases: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., catalog: _Optional[_Union[CatalogInfo, _Mapping]] = ...) -> None: ...

class CatalogInfo(_message.Message):
    __slots__ = ("family", "parameter_count", "context_length", "dtypes", "license", "has_chat_template", "derivation", "derived_from", "linear_modules")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    DTYPES_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    HAS_CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    DERIVATION_FIELD_NUMBER: _ClassVar[int]
    DERIVED_FROM_FIELD_NUMBER: _ClassVar[int]
    LINEAR_MODULES_FIELD_NUMBER: _ClassVar[int]
    family: str
    parameter_count: int
    context_length: int
    dtypes: _containers.RepeatedScalarFieldContainer[str]
    license: str
    has_chat_template: bool
    derivation: str
    derived_from: str
    linear_modules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, family: _Optional[str] = ..., parameter_count: _Optional[int] = ..., context_length: _Optional[int] = ..., dtypes: _Optional[_Iterable[str]] = ..., license: _Optional[str] = ..., has_chat_template: _Optional[bool] = ..., derivation: _Optional[str] = ..., derived_from: _Optional[str] = ..., linear_modules: _Optional[_Iterable[str]] = ...) -> None: ...

class DerivationFailure(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Derivation(_message.Message):
    __slots__ = ("name", "source_version", "operation", "target", "output_model", "state", "result_version", "failure", "peak_memory_bytes", "create_time", "end_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MODEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    source_version: str
    operation: str
    target: str
    output_model: str
    state: DerivationState
    result_version: str
    failure: DerivationFailure
    peak_memory_bytes: int
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., source_version: _Optional[str] = ..., operation: _Optional[str] = ..., target: _Optional[str] = ..., output_model: _Optional[str] = ..., state: _Optional[_Union[DerivationState, str]] = ..., result_version: _Optional[str] = ..., failure: _Optional[_Union[DerivationFailure, _Mapping]] = ..., peak_memory_bytes: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AliasHistoryEntry(_message.Message):
    __slots__ = ("alias", "from_version", "to_version", "actor", "time")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    alias: str
    from_version: str
    to_version: str
    actor: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, alias: _Optional[str] = ..., from_version: _Optional[str] = ..., to_version: _Optional[str] = ..., actor: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LineageNode(_message.Message):
    __slots__ = ("model_version", "kind", "lineage", "derivation", "aliases")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    DERIVATION_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    kind: ModelVersionKind
    lineage: Lineage
    derivation: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_version: _Optional[str] = ..., kind: _Optional[_Union[ModelVersionKind, str]] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ..., derivation: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class LineageEdge(_message.Message):
    __slots__ = ("child", "source", "relation")
    CHILD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    child: str
    source: str
    relation: str
    def __init__(self, child: _Optional[str] = ..., source: _Optional[str] = ..., relation: _Optional[str] = ...) -> None: ...

class ModelAlias(_message.Message):
    __slots__ = ("name", "version", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelVersionUpload(_message.Message):
    __slots__ = ("name", "urls", "expire_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URLS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    urls: _containers.RepeatedCompositeFieldContainer[_common_pb2.PresignedUrl]
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., urls: _Optional[_Iterable[_Union[_common_pb2.PresignedUrl, _Mapping]]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
