import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tuneforge.common.v1 import common_pb2 as _common_pb2
from tuneforge.data.v1 import dataset_pb2 as _dataset_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DedupField(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEDUP_FIELD_UNSPECIFIED: _ClassVar[DedupField]
    DEDUP_FIELD_ROW: _ClassVar[DedupField]
    DEDUP_FIELD_PROMPT: _ClassVar[DedupField]
    DEDUP_FIELD_RESPONSE: _ClassVar[DedupField]
DEDUP_FIELD_UNSPECIFIED: DedupField
DEDUP_FIELD_ROW: DedupField
DEDUP_FIELD_PROMPT: DedupField
DEDUP_FIELD_RESPONSE: DedupField

class CreateDatasetRequest(_message.Message):
    __slots__ = ("parent", "dataset_id", "dataset", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    dataset_id: str
    dataset: _dataset_pb2.Dataset
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., dataset_id: _Optional[str] = ..., dataset: _Optional[_Union[_dataset_pb2.Dataset, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "filter", "order_by")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    filter: str
    order_by: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[_dataset_pb2.Dataset]
    next_page_token: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[_dataset_pb2.Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateDatasetRequest(_message.Message):
    __slots__ = ("dataset", "update_mask")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    dataset: _dataset_pb2.Dataset
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, dataset: _Optional[_Union[_dataset_pb2.Dataset, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class IngestOptions(_message.Message):
    __slots__ = ("filename", "format", "schema", "error_policy", "description", "tags", "provenance", "columns", "text_split")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ColumnsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ERROR_POLICY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TEXT_SPLIT_FIELD_NUMBER: _ClassVar[int]
    filename: str
    format: _dataset_pb2.DataFormat
    schema: _dataset_pb2.DataSchema
    error_policy: _dataset_pb2.ErrorPolicy
    description: str
    tags: _containers.ScalarMap[str, str]
    provenance: _struct_pb2.Struct
    columns: _containers.ScalarMap[str, str]
    text_split: _dataset_pb2.TextSplit
    def __init__(self, filename: _Optional[str] = ..., format: _Optional[_Union[_dataset_pb2.DataFormat, str]] = ..., schema: _Optional[_Union[_dataset_pb2.DataSchema, str]] = ..., error_policy: _Optional[_Union[_dataset_pb2.ErrorPolicy, str]] = ..., description: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., provenance: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., columns: _Optional[_Mapping[str, str]] = ..., text_split: _Optional[_Union[_dataset_pb2.TextSplit, str]] = ...) -> None: ...

class UploadDatasetVersionHeader(_message.Message):
    __slots__ = ("parent", "options", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    options: IngestOptions
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., options: _Optional[_Union[IngestOptions, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UploadDatasetVersionFinish(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class UploadDatasetVersionRequest(_message.Message):
    __slots__ = ("header", "data", "finish")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    header: UploadDatasetVersionHeader
    data: bytes
    finish: UploadDatasetVersionFinish
    def __init__(self, header: _Optional[_Union[UploadDatasetVersionHeader, _Mapping]] = ..., data: _Optional[bytes] = ..., finish: _Optional[_Union[UploadDatasetVersionFinish, _Mapping]] = ...) -> None: ...

class CreateDatasetVersionUploadRequest(_message.Message):
    __slots__ = ("parent", "options", "size_bytes", "sha256", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    options: IngestOptions
    size_bytes: int
    sha256: str
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., options: _Optional[_Union[IngestOptions, _Mapping]] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DatasetVersionUpload(_message.Message):
    __slots__ = ("name", "url", "expire_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: _common_pb2.PresignedUrl
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., url: _Optional[_Union[_common_pb2.PresignedUrl, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CommitDatasetVersionUploadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDatasetVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDatasetVersionsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "filter")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    filter: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListDatasetVersionsResponse(_message.Message):
    __slots__ = ("dataset_versions", "next_page_token")
    DATASET_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dataset_versions: _containers.RepeatedCompositeFieldContainer[_dataset_pb2.DatasetVersion]
    next_page_token: str
    def __init__(self, dataset_versions: _Optional[_Iterable[_Union[_dataset_pb2.DatasetVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteDatasetVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ReadDatasetRowsRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ReadDatasetRowsResponse(_message.Message):
    __slots__ = ("rows", "next_page_token", "total_rows")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    next_page_token: str
    total_rows: int
    def __init__(self, rows: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_rows: _Optional[int] = ...) -> None: ...

class GenerateDatasetVersionDownloadUrlsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GenerateDatasetVersionDownloadUrlsResponse(_message.Message):
    __slots__ = ("urls",)
    URLS_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedCompositeFieldContainer[_common_pb2.PresignedUrl]
    def __init__(self, urls: _Optional[_Iterable[_Union[_common_pb2.PresignedUrl, _Mapping]]] = ...) -> None: ...

class ComputeDatasetInsightRequest(_message.Message):
    __slots__ = ("name", "tokenizer", "max_sequence_length")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    tokenizer: str
    max_sequence_length: int
    def __init__(self, name: _Optional[str] = ..., tokenizer: _Optional[str] = ..., max_sequence_length: _Optional[int] = ...) -> None: ...

class WatchDatasetVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDatasetInsightRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchDatasetInsightRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ExactDedup(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NearDedup(_message.Message):
    __slots__ = ("threshold", "shingle_size", "num_perm", "field")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SHINGLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_PERM_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    shingle_size: int
    num_perm: int
    field: DedupField
    def __init__(self, threshold: _Optional[float] = ..., shingle_size: _Optional[int] = ..., num_perm: _Optional[int] = ..., field: _Optional[_Union[DedupField, str]] = ...) -> None: ...

class FillPlaceholders(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, str]
    def __init__(self, values: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LengthFilter(_message.Message):
    __slots__ = ("min_characters", "max_characters", "min_response_characters")
    MIN_CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    MIN_RESPONSE_CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    min_characters: int
    max_characters: int
    min_response_characters: int
    def __init__(self, min_characters: _Optional[int] = ..., max_characters: _Optional[int] = ..., min_response_characters: _Optional[int] = ...) -> None: ...

class DropEmpty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NormalizeUnicode(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NormalizeWhitespace(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MaskPii(_message.Message):
    __slots__ = ("kinds",)
    KINDS_FIELD_NUMBER: _ClassVar[int]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kinds: _Optional[_Iterable[str]] = ...) -> None: ...

class RegexFilter(_message.Message):
    __slots__ = ("pattern", "keep_matching")
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    KEEP_MATCHING_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    keep_matching: bool
    def __init__(self, pattern: _Optional[str] = ..., keep_matching: _Optional[bool] = ...) -> None: ...

class KeywordFilter(_message.Message):
    __slots__ = ("keywords",)
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    keywords: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keywords: _Optional[_Iterable[str]] = ...) -> None: ...

class CleaningOperation(_message.Message):
    __slots__ = ("exact_dedup", "near_dedup", "length_filter", "drop_empty", "normalize_unicode", "normalize_whitespace", "mask_pii", "regex_filter", "keyword_filter", "fill_placeholders")
    EXACT_DEDUP_FIELD_NUMBER: _ClassVar[int]
    NEAR_DEDUP_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FILTER_FIELD_NUMBER: _ClassVar[int]
    DROP_EMPTY_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_UNICODE_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_WHITESPACE_FIELD_NUMBER: _ClassVar[int]
    MASK_PII_FIELD_NUMBER: _ClassVar[int]
    REGEX_FILTER_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FILTER_FIELD_NUMBER: _ClassVar[int]
    FILL_PLACEHOLDERS_FIELD_NUMBER: _ClassVar[int]
    exact_dedup: ExactDedup
    near_dedup: NearDedup
    length_filter: LengthFilter
    drop_empty: DropEmpty
    normalize_unicode: NormalizeUnicode
    normalize_whitespace: NormalizeWhitespace
    mask_pii: MaskPii
    regex_filter: RegexFilter
    keyword_filter: KeywordFilter
    fill_placeholders: FillPlaceholders
    def __init__(self, exact_dedup: _Optional[_Union[ExactDedup, _Mapping]] = ..., near_dedup: _Optional[_Union[NearDedup, _Mapping]] = ..., length_filter: _Optional[_Union[LengthFilter, _Mapping]] = ..., drop_empty: _Optional[_Union[DropEmpty, _Mapping]] = ..., normalize_unicode: _Optional[_Union[NormalizeUnicode, _Mapping]] = ..., normalize_whitespace: _Optional[_Union[NormalizeWhitespace, _Mapping]] = ..., mask_pii: _Optional[_Union[MaskPii, _Mapping]] = ..., regex_filter: _Optional[_Union[RegexFilter, _Mapping]] = ..., keyword_filter: _Optional[_Union[KeywordFilter, _Mapping]] = ..., fill_placeholders: _Optional[_Union[FillPlaceholders, _Mapping]] = ...) -> None: ...

class CleanDatasetVersionRequest(_message.Message):
    __slots__ = ("name", "operations", "description", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    operations: _containers.RepeatedCompositeFieldContainer[CleaningOperation]
    description: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., operations: _Optional[_Iterable[_Union[CleaningOperation, _Mapping]]] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SplitDatasetVersionRequest(_message.Message):
    __slots__ = ("name", "validation_ratio", "seed", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    validation_ratio: float
    seed: int
    request_id: str
    def __init__(self, name: _Optional[str] = ..., validation_ratio: _Optional[float] = ..., seed: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class SplitDatasetVersionResponse(_message.Message):
    __slots__ = ("train", "validation")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    train: _dataset_pb2.DatasetVersion
    validation: _dataset_pb2.DatasetVersion
    def __init__(self, train: _Optional[_Union[_dataset_pb2.DatasetVersion, _Mapping]] = ..., validation: _Optional[_Union[_dataset_pb2.DatasetVersion, _Mapping]] = ...) -> None: ...

class PlanMixtureRequest(_message.Message):
    __slots__ = ("parent", "sources", "seed")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    parent: str
    sources: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatasetVersionRef]
    seed: int
    def __init__(self, parent: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[_common_pb2.DatasetVersionRef, _Mapping]]] = ..., seed: _Optional[int] = ...) -> None: ...

class CreateMixtureRequest(_message.Message):
    __slots__ = ("parent", "sources", "seed", "description", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    sources: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatasetVersionRef]
    seed: int
    description: str
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[_common_pb2.DatasetVersionRef, _Mapping]]] = ..., seed: _Optional[int] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class MaterializeMixtureRequest(_message.Message):
    __slots__ = ("parent", "sources", "seed", "validation_ratio", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    sources: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatasetVersionRef]
    seed: int
    validation_ratio: float
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[_common_pb2.DatasetVersionRef, _Mapping]]] = ..., seed: _Optional[int] = ..., validation_ratio: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetMixtureRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchMixtureRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteMixtureRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListPresetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPresetsResponse(_message.Message):
    __slots__ = ("presets",)
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    presets: _containers.RepeatedCompositeFieldContainer[_dataset_pb2.Preset]
    def __init__(self, presets: _Optional[_Iterable[_Union[_dataset_pb2.Preset, _Mapping]]] = ...) -> None: ...

class GetPresetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class InstallPresetRequest(_message.Message):
    __slots__ = ("parent", "preset", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    preset: str
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., preset: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class InstallPresetResponse(_message.Message):
    __slots__ = ("preset", "dataset_versions", "hyperparameters")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    preset: _dataset_pb2.Preset
    dataset_versions: _containers.RepeatedCompositeFieldContainer[_dataset_pb2.DatasetVersion]
    hyperparameters: _struct_pb2.Struct
    def __init__(self, preset: _Optional[_Union[_dataset_pb2.Preset, _Mapping]] = ..., dataset_versions: _Optional[_Iterable[_Union[_dataset_pb2.DatasetVersion, _Mapping]]] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
