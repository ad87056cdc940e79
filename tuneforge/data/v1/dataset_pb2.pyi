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

class DatasetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_KIND_UNSPECIFIED: _ClassVar[DatasetKind]
    DATASET_KIND_TEXT: _ClassVar[DatasetKind]
    DATASET_KIND_SFT: _ClassVar[DatasetKind]
    DATASET_KIND_PREFERENCE: _ClassVar[DatasetKind]
    DATASET_KIND_UNPAIRED_PREFERENCE: _ClassVar[DatasetKind]
    DATASET_KIND_PROMPT_ONLY: _ClassVar[DatasetKind]
    DATASET_KIND_EVAL: _ClassVar[DatasetKind]

class DataFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_FORMAT_UNSPECIFIED: _ClassVar[DataFormat]
    DATA_FORMAT_JSONL: _ClassVar[DataFormat]
    DATA_FORMAT_JSON: _ClassVar[DataFormat]
    DATA_FORMAT_CSV: _ClassVar[DataFormat]
    DATA_FORMAT_PARQUET: _ClassVar[DataFormat]
    DATA_FORMAT_TEXT: _ClassVar[DataFormat]

class DataSchema(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_SCHEMA_UNSPECIFIED: _ClassVar[DataSchema]
    DATA_SCHEMA_CANONICAL: _ClassVar[DataSchema]
    DATA_SCHEMA_OPENAI_CHAT: _ClassVar[DataSchema]
    DATA_SCHEMA_ALPACA: _ClassVar[DataSchema]
    DATA_SCHEMA_SHAREGPT: _ClassVar[DataSchema]
    DATA_SCHEMA_QIANFAN: _ClassVar[DataSchema]
    DATA_SCHEMA_TRL: _ClassVar[DataSchema]
    DATA_SCHEMA_TEXT: _ClassVar[DataSchema]

class TextSplit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_SPLIT_UNSPECIFIED: _ClassVar[TextSplit]
    TEXT_SPLIT_BLANK_LINE: _ClassVar[TextSplit]
    TEXT_SPLIT_LINE: _ClassVar[TextSplit]
    TEXT_SPLIT_FILE: _ClassVar[TextSplit]

class ErrorPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_POLICY_UNSPECIFIED: _ClassVar[ErrorPolicy]
    ERROR_POLICY_FAIL: _ClassVar[ErrorPolicy]
    ERROR_POLICY_SKIP: _ClassVar[ErrorPolicy]

class DatasetVersionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_VERSION_STATE_UNSPECIFIED: _ClassVar[DatasetVersionState]
    DATASET_VERSION_STATE_READY: _ClassVar[DatasetVersionState]
    DATASET_VERSION_STATE_FAILED: _ClassVar[DatasetVersionState]
    DATASET_VERSION_STATE_PROCESSING: _ClassVar[DatasetVersionState]

class ComputationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPUTATION_STATE_UNSPECIFIED: _ClassVar[ComputationState]
    COMPUTATION_STATE_PENDING: _ClassVar[ComputationState]
    COMPUTATION_STATE_RUNNING: _ClassVar[ComputationState]
    COMPUTATION_STATE_READY: _ClassVar[ComputationState]
    COMPUTATION_STATE_FAILED: _ClassVar[ComputationState]
DATASET_KIND_UNSPECIFIED: DatasetKind
DATASET_KIND_TEXT: DatasetKind
DATASET_KIND_SFT: DatasetKind
DATASET_KIND_PREFERENCE: DatasetKind
DATASET_KIND_UNPAIRED_PREFERENCE: DatasetKind
DATASET_KIND_PROMPT_ONLY: DatasetKind
DATASET_KIND_EVAL: DatasetKind
DATA_FORMAT_UNSPECIFIED: DataFormat
DATA_FORMAT_JSONL: DataFormat
DATA_FORMAT_JSON: DataFormat
DATA_FORMAT_CSV: DataFormat
DATA_FORMAT_PARQUET: DataFormat
DATA_FORMAT_TEXT: DataFormat
DATA_SCHEMA_UNSPECIFIED: DataSchema
DATA_SCHEMA_CANONICAL: DataSchema
DATA_SCHEMA_OPENAI_CHAT: DataSchema
DATA_SCHEMA_ALPACA: DataSchema
DATA_SCHEMA_SHAREGPT: DataSchema
DATA_SCHEMA_QIANFAN: DataSchema
DATA_SCHEMA_TRL: DataSchema
DATA_SCHEMA_TEXT: DataSchema
TEXT_SPLIT_UNSPECIFIED: TextSplit
TEXT_SPLIT_BLANK_LINE: TextSplit
TEXT_SPLIT_LINE: TextSplit
TEXT_SPLIT_FILE: TextSplit
ERROR_POLICY_UNSPECIFIED: ErrorPolicy
ERROR_POLICY_FAIL: ErrorPolicy
ERROR_POLICY_SKIP: ErrorPolicy
DATASET_VERSION_STATE_UNSPECIFIED: DatasetVersionState
DATASET_VERSION_STATE_READY: DatasetVersionState
DATASET_VERSION_STATE_FAILED: DatasetVersionState
DATASET_VERSION_STATE_PROCESSING: DatasetVersionState
COMPUTATION_STATE_UNSPECIFIED: ComputationState
COMPUTATION_STATE_PENDING: ComputationState
COMPUTATION_STATE_RUNNING: ComputationState
COMPUTATION_STATE_READY: ComputationState
COMPUTATION_STATE_FAILED: ComputationState

class DataWarning(_message.Message):
    __slots__ = ("reason", "message", "count", "row_ids", "details")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ROW_IDS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    count: int
    row_ids: _containers.RepeatedScalarFieldContainer[str]
    details: _struct_pb2.Struct
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ..., count: _Optional[int] = ..., row_ids: _Optional[_Iterable[str]] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("name", "uid", "display_name", "description", "kind", "tags", "create_time", "update_time", "version_count", "latest_version")
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
    KIND_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    display_name: str
    description: str
    kind: DatasetKind
    tags: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    version_count: int
    latest_version: str
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., kind: _Optional[_Union[DatasetKind, str]] = ..., tags: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version_count: _Optional[int] = ..., latest_version: _Optional[str] = ...) -> None: ...

class RowError(_message.Message):
    __slots__ = ("file", "line", "row", "field", "reason", "message")
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    file: str
    line: int
    row: int
    field: str
    reason: str
    message: str
    def __init__(self, file: _Optional[str] = ..., line: _Optional[int] = ..., row: _Optional[int] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ErrorSummary(_message.Message):
    __slots__ = ("error_count", "counts_by_reason", "examples")
    class CountsByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    COUNTS_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    error_count: int
    counts_by_reason: _containers.ScalarMap[str, int]
    examples: _containers.RepeatedCompositeFieldContainer[RowError]
    def __init__(self, error_count: _Optional[int] = ..., counts_by_reason: _Optional[_Mapping[str, int]] = ..., examples: _Optional[_Iterable[_Union[RowError, _Mapping]]] = ...) -> None: ...

class CleaningStepReport(_message.Message):
    __slots__ = ("operation", "rows_in", "rows_removed", "rows_changed", "examples")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ROWS_IN_FIELD_NUMBER: _ClassVar[int]
    ROWS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    ROWS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    operation: str
    rows_in: int
    rows_removed: int
    rows_changed: int
    examples: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, operation: _Optional[str] = ..., rows_in: _Optional[int] = ..., rows_removed: _Optional[int] = ..., rows_changed: _Optional[int] = ..., examples: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class DatasetVersion(_message.Message):
    __slots__ = ("name", "uid", "state", "kind", "row_count", "character_count", "skipped_row_count", "errors", "source_file", "source_format", "source_schema", "files", "recipe", "cleaning", "description", "tags", "create_time", "failure", "update_time", "warnings")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHARACTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FILE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    CLEANING_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    state: DatasetVersionState
    kind: DatasetKind
    row_count: int
    character_count: int
    skipped_row_count: int
    errors: ErrorSummary
    source_file: str
    source_format: DataFormat
    source_schema: DataSchema
    files: _containers.RepeatedCompositeFieldContainer[_common_pb2.FileEntry]
    recipe: _struct_pb2.Struct
    cleaning: _containers.RepeatedCompositeFieldContainer[CleaningStepReport]
    description: str
    tags: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    failure: Failure
    update_time: _timestamp_pb2.Timestamp
    warnings: _containers.RepeatedCompositeFieldContainer[DataWarning]
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., state: _Optional[_Union[DatasetVersionState, str]] = ..., kind: _Optional[_Union[DatasetKind, str]] = ..., row_count: _Optional[int] = ..., character_count: _Optional[int] = ..., skipped_row_count: _Optional[int] = ..., errors: _Optional[_Union[ErrorSummary, _Mapping]] = ..., source_file: _Optional[str] = ..., source_format: _Optional[_Union[DataFormat, str]] = ..., source_schema: _Optional[_Union[DataSchema, str]] = ..., files: _Optional[_Iterable[_Union[_common_pb2.FileEntry, _Mapping]]] = ..., recipe: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., cleaning: _Optional[_Iterable[_Union[CleaningStepReport, _Mapping]]] = ..., description: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[DataWarning, _Mapping]]] = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class MixtureSource(_message.Message):
    __slots__ = ("source", "characters", "samples", "sampled_samples", "sampled_characters", "share")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    source: _common_pb2.DatasetVersionRef
    characters: int
    samples: int
    sampled_samples: int
    sampled_characters: int
    share: float
    def __init__(self, source: _Optional[_Union[_common_pb2.DatasetVersionRef, _Mapping]] = ..., characters: _Optional[int] = ..., samples: _Optional[int] = ..., sampled_samples: _Optional[int] = ..., sampled_characters: _Optional[int] = ..., share: _Optional[float] = ...) -> None: ...

class MixturePlan(_message.Message):
    __slots__ = ("sources", "total_samples", "total_characters", "kind", "seed")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[MixtureSource]
    total_samples: int
    total_characters: int
    kind: DatasetKind
    seed: int
    def __init__(self, sources: _Optional[_Iterable[_Union[MixtureSource, _Mapping]]] = ..., total_samples: _Optional[int] = ..., total_characters: _Optional[int] = ..., kind: _Optional[_Union[DatasetKind, str]] = ..., seed: _Optional[int] = ...) -> None: ...

class DatasetInsight(_message.Message):
    __slots__ = ("dataset_version", "report", "charts", "name", "state", "tokenizer", "max_sequence_length", "failure", "create_time")
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    CHARTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    dataset_version: str
    report: _struct_pb2.Struct
    charts: _containers.RepeatedCompositeFieldContainer[_common_pb2.PresignedUrl]
    name: str
    state: ComputationState
    tokenizer: str
    max_sequence_length: int
    failure: Failure
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, dataset_version: _Optional[str] = ..., report: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., charts: _Optional[_Iterable[_Union[_common_pb2.PresignedUrl, _Mapping]]] = ..., name: _Optional[str] = ..., state: _Optional[_Union[ComputationState, str]] = ..., tokenizer: _Optional[str] = ..., max_sequence_length: _Optional[int] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Mixture(_message.Message):
    __slots__ = ("name", "state", "plan", "validation_ratio", "train_rows", "validation_rows", "files", "urls", "failure", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_ROWS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    URLS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: ComputationState
    plan: MixturePlan
    validation_ratio: float
    train_rows: int
    validation_rows: int
    files: _containers.RepeatedCompositeFieldContainer[_common_pb2.FileEntry]
    urls: _containers.RepeatedCompositeFieldContainer[_common_pb2.PresignedUrl]
    failure: Failure
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[ComputationState, str]] = ..., plan: _Optional[_Union[MixturePlan, _Mapping]] = ..., validation_ratio: _Optional[float] = ..., train_rows: _Optional[int] = ..., validation_rows: _Optional[int] = ..., files: _Optional[_Iterable[_Union[_common_pb2.FileEntry, _Mapping]]] = ..., urls: _Optional[_Iterable[_Union[_common_pb2.PresignedUrl, _Mapping]]] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Preset(_message.Message):
    __slots__ = ("name", "display_name", "description", "method", "hyperparameters", "metrics", "datasets", "train_rows", "eval_rows")
    class DatasetsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    EVAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    method: str
    hyperparameters: _struct_pb2.Struct
    metrics: _containers.RepeatedScalarFieldContainer[str]
    datasets: _containers.ScalarMap[str, str]
    train_rows: int
    eval_rows: int
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., method: _Optional[str] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metrics: _Optional[_Iterable[str]] = ..., datasets: _Optional[_Mapping[str, str]] = ..., train_rows: _Optional[int] = ..., eval_rows: _Optional[int] = ...) -> None: ...
