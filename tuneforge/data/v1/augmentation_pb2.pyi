import datetime

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

class AugmentationOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUGMENTATION_OPERATION_UNSPECIFIED: _ClassVar[AugmentationOperation]
    AUGMENTATION_OPERATION_ANSWER: _ClassVar[AugmentationOperation]
    AUGMENTATION_OPERATION_PARAPHRASE: _ClassVar[AugmentationOperation]
    AUGMENTATION_OPERATION_SELF_INSTRUCT: _ClassVar[AugmentationOperation]
    AUGMENTATION_OPERATION_EVOL_INSTRUCT: _ClassVar[AugmentationOperation]
    AUGMENTATION_OPERATION_PREFERENCE_PAIRS: _ClassVar[AugmentationOperation]
    AUGMENTATION_OPERATION_TRANSLATE: _ClassVar[AugmentationOperation]

class AugmentationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUGMENTATION_STATE_UNSPECIFIED: _ClassVar[AugmentationState]
    AUGMENTATION_STATE_PENDING: _ClassVar[AugmentationState]
    AUGMENTATION_STATE_RUNNING: _ClassVar[AugmentationState]
    AUGMENTATION_STATE_SUCCEEDED: _ClassVar[AugmentationState]
    AUGMENTATION_STATE_FAILED: _ClassVar[AugmentationState]
    AUGMENTATION_STATE_CANCELLED: _ClassVar[AugmentationState]

class AnnotationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANNOTATION_KIND_UNSPECIFIED: _ClassVar[AnnotationKind]
    ANNOTATION_KIND_SCORE: _ClassVar[AnnotationKind]
    ANNOTATION_KIND_LABEL: _ClassVar[AnnotationKind]
    ANNOTATION_KIND_CORRECTION: _ClassVar[AnnotationKind]
    ANNOTATION_KIND_CHOICE: _ClassVar[AnnotationKind]

class AnnotationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANNOTATION_STATE_UNSPECIFIED: _ClassVar[AnnotationState]
    ANNOTATION_STATE_PENDING: _ClassVar[AnnotationState]
    ANNOTATION_STATE_LABELLING: _ClassVar[AnnotationState]
    ANNOTATION_STATE_REVIEWING: _ClassVar[AnnotationState]
    ANNOTATION_STATE_FINISHED: _ClassVar[AnnotationState]
    ANNOTATION_STATE_FAILED: _ClassVar[AnnotationState]
    ANNOTATION_STATE_CANCELLED: _ClassVar[AnnotationState]

class ReviewAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_ACTION_UNSPECIFIED: _ClassVar[ReviewAction]
    REVIEW_ACTION_ACCEPT: _ClassVar[ReviewAction]
    REVIEW_ACTION_EDIT: _ClassVar[ReviewAction]
    REVIEW_ACTION_REJECT: _ClassVar[ReviewAction]

class AnnotationItemStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANNOTATION_ITEM_STATUS_UNSPECIFIED: _ClassVar[AnnotationItemStatus]
    ANNOTATION_ITEM_STATUS_UNREVIEWED: _ClassVar[AnnotationItemStatus]
    ANNOTATION_ITEM_STATUS_KEPT: _ClassVar[AnnotationItemStatus]
    ANNOTATION_ITEM_STATUS_REJECTED: _ClassVar[AnnotationItemStatus]
AUGMENTATION_OPERATION_UNSPECIFIED: AugmentationOperation
AUGMENTATION_OPERATION_ANSWER: AugmentationOperation
AUGMENTATION_OPERATION_PARAPHRASE: AugmentationOperation
AUGMENTATION_OPERATION_SELF_INSTRUCT: AugmentationOperation
AUGMENTATION_OPERATION_EVOL_INSTRUCT: AugmentationOperation
AUGMENTATION_OPERATION_PREFERENCE_PAIRS: AugmentationOperation
AUGMENTATION_OPERATION_TRANSLATE: AugmentationOperation
AUGMENTATION_STATE_UNSPECIFIED: AugmentationState
AUGMENTATION_STATE_PENDING: AugmentationState
AUGMENTATION_STATE_RUNNING: AugmentationState
AUGMENTATION_STATE_SUCCEEDED: AugmentationState
AUGMENTATION_STATE_FAILED: AugmentationState
AUGMENTATION_STATE_CANCELLED: AugmentationState
ANNOTATION_KIND_UNSPECIFIED: AnnotationKind
ANNOTATION_KIND_SCORE: AnnotationKind
ANNOTATION_KIND_LABEL: AnnotationKind
ANNOTATION_KIND_CORRECTION: AnnotationKind
ANNOTATION_KIND_CHOICE: AnnotationKind
ANNOTATION_STATE_UNSPECIFIED: AnnotationState
ANNOTATION_STATE_PENDING: AnnotationState
ANNOTATION_STATE_LABELLING: AnnotationState
ANNOTATION_STATE_REVIEWING: AnnotationState
ANNOTATION_STATE_FINISHED: AnnotationState
ANNOTATION_STATE_FAILED: AnnotationState
ANNOTATION_STATE_CANCELLED: AnnotationState
REVIEW_ACTION_UNSPECIFIED: ReviewAction
REVIEW_ACTION_ACCEPT: ReviewAction
REVIEW_ACTION_EDIT: ReviewAction
REVIEW_ACTION_REJECT: ReviewAction
ANNOTATION_ITEM_STATUS_UNSPECIFIED: AnnotationItemStatus
ANNOTATION_ITEM_STATUS_UNREVIEWED: AnnotationItemStatus
ANNOTATION_ITEM_STATUS_KEPT: AnnotationItemStatus
ANNOTATION_ITEM_STATUS_REJECTED: AnnotationItemStatus

class Teacher(_message.Message):
    __slots__ = ("name", "uid", "display_name", "deployment", "base_url", "model", "api_key", "has_api_key", "max_concurrency", "requests_per_minute", "timeout_seconds", "max_retries", "input_cost_per_million_tokens", "output_cost_per_million_tokens", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    HAS_API_KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    INPUT_COST_PER_MILLION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_COST_PER_MILLION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    display_name: str
    deployment: str
    base_url: str
    model: str
    api_key: str
    has_api_key: bool
    max_concurrency: int
    requests_per_minute: float
    timeout_seconds: float
    max_retries: int
    input_cost_per_million_tokens: float
    output_cost_per_million_tokens: float
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., display_name: _Optional[str] = ..., deployment: _Optional[str] = ..., base_url: _Optional[str] = ..., model: _Optional[str] = ..., api_key: _Optional[str] = ..., has_api_key: _Optional[bool] = ..., max_concurrency: _Optional[int] = ..., requests_per_minute: _Optional[float] = ..., timeout_seconds: _Optional[float] = ..., max_retries: _Optional[int] = ..., input_cost_per_million_tokens: _Optional[float] = ..., output_cost_per_million_tokens: _Optional[float] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AugmentationParameters(_message.Message):
    __slots__ = ("samples", "count", "rounds", "regenerate_answers", "answer", "include_source", "target_language", "output_kind", "min_score_margin", "desirable_score", "examples_per_prompt", "temperature", "top_p", "max_tokens", "seed", "max_rows")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    REGENERATE_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    DESIRABLE_SCORE_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_PER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    samples: int
    count: int
    rounds: int
    regenerate_answers: bool
    answer: bool
    include_source: bool
    target_language: str
    output_kind: _dataset_pb2.DatasetKind
    min_score_margin: float
    desirable_score: float
    examples_per_prompt: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    max_rows: int
    def __init__(self, samples: _Optional[int] = ..., count: _Optional[int] = ..., rounds: _Optional[int] = ..., regenerate_answers: _Optional[bool] = ..., answer: _Optional[bool] = ..., include_source: _Optional[bool] = ..., target_language: _Optional[str] = ..., output_kind: _Optional[_Union[_dataset_pb2.DatasetKind, str]] = ..., min_score_margin: _Optional[float] = ..., desirable_score: _Optional[float] = ..., examples_per_prompt: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ..., seed: _Optional[int] = ..., max_rows: _Optional[int] = ...) -> None: ...

class AugmentationFilters(_message.Message):
    __slots__ = ("judge_min_score", "judge_rubric", "regex", "json_schema", "required_fields", "min_characters", "max_characters", "exact_dedup", "near_dedup_threshold")
    JUDGE_MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_RUBRIC_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    MIN_CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    EXACT_DEDUP_FIELD_NUMBER: _ClassVar[int]
    NEAR_DEDUP_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    judge_min_score: float
    judge_rubric: str
    regex: str
    json_schema: str
    required_fields: _containers.RepeatedScalarFieldContainer[str]
    min_characters: int
    max_characters: int
    exact_dedup: bool
    near_dedup_threshold: float
    def __init__(self, judge_min_score: _Optional[float] = ..., judge_rubric: _Optional[str] = ..., regex: _Optional[str] = ..., json_schema: _Optional[str] = ..., required_fields: _Optional[_Iterable[str]] = ..., min_characters: _Optional[int] = ..., max_characters: _Optional[int] = ..., exact_dedup: _Optional[bool] = ..., near_dedup_threshold: _Optional[float] = ...) -> None: ...

class AugmentationProgress(_message.Message):
    __slots__ = ("rows_total", "rows_done", "rows_failed", "calls", "cached_calls", "retries", "prompt_tokens", "completion_tokens", "cost_estimate", "generated_rows", "kept_rows", "dropped_by_reason")
    class DroppedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ROWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ROWS_DONE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FAILED_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    CACHED_CALLS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    GENERATED_ROWS_FIELD_NUMBER: _ClassVar[int]
    KEPT_ROWS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    rows_total: int
    rows_done: int
    rows_failed: int
    calls: int
    cached_calls: int
    retries: int
    prompt_tokens: int
    completion_tokens: int
    cost_estimate: float
    generated_rows: int
    kept_rows: int
    dropped_by_reason: _containers.ScalarMap[str, int]
    def __init__(self, rows_total: _Optional[int] = ..., rows_done: _Optional[int] = ..., rows_failed: _Optional[int] = ..., calls: _Optional[int] = ..., cached_calls: _Optional[int] = ..., retries: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cost_estimate: _Optional[float] = ..., generated_rows: _Optional[int] = ..., kept_rows: _Optional[int] = ..., dropped_by_reason: _Optional[_Mapping[str, int]] = ...) -> None: ...

class AugmentationRowError(_message.Message):
    __slots__ = ("row_id", "reason", "message")
    ROW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    row_id: str
    reason: str
    message: str
    def __init__(self, row_id: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class AugmentationRun(_message.Message):
    __slots__ = ("name", "uid", "source", "output_dataset", "operation", "teacher", "judge", "templates", "parameters", "filters", "state", "progress", "errors_by_reason", "error_examples", "output_version", "failure", "rejects", "description", "create_time", "update_time")
    class TemplatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ErrorsByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DATASET_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    TEACHER_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_VERSION_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    REJECTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    source: str
    output_dataset: str
    operation: AugmentationOperation
    teacher: str
    judge: str
    templates: _containers.ScalarMap[str, str]
    parameters: AugmentationParameters
    filters: AugmentationFilters
    state: AugmentationState
    progress: AugmentationProgress
    errors_by_reason: _containers.ScalarMap[str, int]
    error_examples: _containers.RepeatedCompositeFieldContainer[AugmentationRowError]
    output_version: str
    failure: _dataset_pb2.Failure
    rejects: _common_pb2.PresignedUrl
    description: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., source: _Optional[str] = ..., output_dataset: _Optional[str] = ..., operation: _Optional[_Union[AugmentationOperation, str]] = ..., teacher: _Optional[str] = ..., judge: _Optional[str] = ..., templates: _Optional[_Mapping[str, str]] = ..., parameters: _Optional[_Union[AugmentationParameters, _Mapping]] = ..., filters: _Optional[_Union[AugmentationFilters, _Mapping]] = ..., state: _Optional[_Union[AugmentationState, str]] = ..., progress: _Optional[_Union[AugmentationProgress, _Mapping]] = ..., errors_by_reason: _Optional[_Mapping[str, int]] = ..., error_examples: _Optional[_Iterable[_Union[AugmentationRowError, _Mapping]]] = ..., output_version: _Optional[str] = ..., failure: _Optional[_Union[_dataset_pb2.Failure, _Mapping]] = ..., rejects: _Optional[_Union[_common_pb2.PresignedUrl, _Mapping]] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AugmentationTemplate(_message.Message):
    __slots__ = ("name", "operations", "text", "description", "fields")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    operations: _containers.RepeatedScalarFieldContainer[AugmentationOperation]
    text: str
    description: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., operations: _Optional[_Iterable[_Union[AugmentationOperation, str]]] = ..., text: _Optional[str] = ..., description: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class AnnotationValue(_message.Message):
    __slots__ = ("score", "label", "answer", "choice")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    score: int
    label: str
    answer: str
    choice: str
    def __init__(self, score: _Optional[int] = ..., label: _Optional[str] = ..., answer: _Optional[str] = ..., choice: _Optional[str] = ...) -> None: ...

class AnnotationReview(_message.Message):
    __slots__ = ("annotator", "action", "value", "review_time")
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REVIEW_TIME_FIELD_NUMBER: _ClassVar[int]
    annotator: str
    action: ReviewAction
    value: AnnotationValue
    review_time: _timestamp_pb2.Timestamp
    def __init__(self, annotator: _Optional[str] = ..., action: _Optional[_Union[ReviewAction, str]] = ..., value: _Optional[_Union[AnnotationValue, _Mapping]] = ..., review_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AnnotationAgreement(_message.Message):
    __slots__ = ("reviewed_items", "reviews_by_action", "model_reviews", "model_agreement", "model_kappa", "multi_reviewed_items", "reviewer_agreement", "reviewer_kappa", "model_score_mae")
    class ReviewsByActionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    REVIEWED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_BY_ACTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_REVIEWS_FIELD_NUMBER: _ClassVar[int]
    MODEL_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_KAPPA_FIELD_NUMBER: _ClassVar[int]
    MULTI_REVIEWED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_KAPPA_FIELD_NUMBER: _ClassVar[int]
    MODEL_SCORE_MAE_FIELD_NUMBER: _ClassVar[int]
    reviewed_items: int
    reviews_by_action: _containers.ScalarMap[str, int]
    model_reviews: int
    model_agreement: float
    model_kappa: float
    multi_reviewed_items: int
    reviewer_agreement: float
    reviewer_kappa: float
    model_score_mae: float
    def __init__(self, reviewed_items: _Optional[int] = ..., reviews_by_action: _Optional[_Mapping[str, int]] = ..., model_reviews: _Optional[int] = ..., model_agreement: _Optional[float] = ..., model_kappa: _Optional[float] = ..., multi_reviewed_items: _Optional[int] = ..., reviewer_agreement: _Optional[float] = ..., reviewer_kappa: _Optional[float] = ..., model_score_mae: _Optional[float] = ...) -> None: ...

class AnnotationProgress(_message.Message):
    __slots__ = ("items", "prelabelled", "prelabel_failed", "reviewed", "calls", "cached_calls", "prompt_tokens", "completion_tokens", "cost_estimate")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PRELABELLED_FIELD_NUMBER: _ClassVar[int]
    PRELABEL_FAILED_FIELD_NUMBER: _ClassVar[int]
    REVIEWED_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    CACHED_CALLS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    items: int
    prelabelled: int
    prelabel_failed: int
    reviewed: int
    calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_estimate: float
    def __init__(self, items: _Optional[int] = ..., prelabelled: _Optional[int] = ..., prelabel_failed: _Optional[int] = ..., reviewed: _Optional[int] = ..., calls: _Optional[int] = ..., cached_calls: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cost_estimate: _Optional[float] = ...) -> None: ...

class AnnotationTask(_message.Message):
    __slots__ = ("name", "uid", "source", "kind", "instructions", "labels", "score_min", "score_max", "teacher", "template", "max_rows", "state", "progress", "agreement", "output_version", "failure", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SCORE_MIN_FIELD_NUMBER: _ClassVar[int]
    SCORE_MAX_FIELD_NUMBER: _ClassVar[int]
    TEACHER_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_VERSION_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    source: str
    kind: AnnotationKind
    instructions: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    score_min: int
    score_max: int
    teacher: str
    template: str
    max_rows: int
    state: AnnotationState
    progress: AnnotationProgress
    agreement: AnnotationAgreement
    output_version: str
    failure: _dataset_pb2.Failure
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., source: _Optional[str] = ..., kind: _Optional[_Union[AnnotationKind, str]] = ..., instructions: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., score_min: _Optional[int] = ..., score_max: _Optional[int] = ..., teacher: _Optional[str] = ..., template: _Optional[str] = ..., max_rows: _Optional[int] = ..., state: _Optional[_Union[AnnotationState, str]] = ..., progress: _Optional[_Union[AnnotationProgress, _Mapping]] = ..., agreement: _Optional[_Union[AnnotationAgreement, _Mapping]] = ..., output_version: _Optional[str] = ..., failure: _Optional[_Union[_dataset_pb2.Failure, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AnnotationItem(_message.Message):
    __slots__ = ("name", "row_id", "row", "candidates", "model_value", "model_output", "model_error", "reviews", "status", "final_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROW_ID_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VALUE_FIELD_NUMBER: _ClassVar[int]
    MODEL_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_ERROR_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FINAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    row_id: str
    row: _struct_pb2.Struct
    candidates: _containers.RepeatedScalarFieldContainer[str]
    model_value: AnnotationValue
    model_output: str
    model_error: str
    reviews: _containers.RepeatedCompositeFieldContainer[AnnotationReview]
    status: AnnotationItemStatus
    final_value: AnnotationValue
    def __init__(self, name: _Optional[str] = ..., row_id: _Optional[str] = ..., row: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., candidates: _Optional[_Iterable[str]] = ..., model_value: _Optional[_Union[AnnotationValue, _Mapping]] = ..., model_output: _Optional[str] = ..., model_error: _Optional[str] = ..., reviews: _Optional[_Iterable[_Union[AnnotationReview, _Mapping]]] = ..., status: _Optional[_Union[AnnotationItemStatus, str]] = ..., final_value: _Optional[_Union[AnnotationValue, _Mapping]] = ...) -> None: ...
