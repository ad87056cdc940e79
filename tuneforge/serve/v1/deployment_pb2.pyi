import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Engine(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENGINE_UNSPECIFIED: _ClassVar[Engine]
    ENGINE_AUTO: _ClassVar[Engine]
    ENGINE_VLLM: _ClassVar[Engine]
    ENGINE_TRANSFORMERS: _ClassVar[Engine]

class DeploymentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPLOYMENT_STATE_UNSPECIFIED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_CREATING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_READY: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_UPDATING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_FAILED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_STOPPED: _ClassVar[DeploymentState]

class Rating(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RATING_UNSPECIFIED: _ClassVar[Rating]
    RATING_UP: _ClassVar[Rating]
    RATING_DOWN: _ClassVar[Rating]
ENGINE_UNSPECIFIED: Engine
ENGINE_AUTO: Engine
ENGINE_VLLM: Engine
ENGINE_TRANSFORMERS: Engine
DEPLOYMENT_STATE_UNSPECIFIED: DeploymentState
DEPLOYMENT_STATE_CREATING: DeploymentState
DEPLOYMENT_STATE_READY: DeploymentState
DEPLOYMENT_STATE_UPDATING: DeploymentState
DEPLOYMENT_STATE_FAILED: DeploymentState
DEPLOYMENT_STATE_STOPPED: DeploymentState
RATING_UNSPECIFIED: Rating
RATING_UP: Rating
RATING_DOWN: Rating

class GenerationDefaults(_message.Message):
    __slots__ = ("temperature", "top_p", "max_tokens")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    max_tokens: int
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("name", "uid", "display_name", "model_version", "serving_version", "base_model_version", "replicas", "engine", "generation", "max_context", "max_concurrent_requests", "logging", "pii_masking", "state", "state_reason", "ready_replicas", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVING_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    LOGGING_FIELD_NUMBER: _ClassVar[int]
    PII_MASKING_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    READY_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    display_name: str
    model_version: str
    serving_version: str
    base_model_version: str
    replicas: int
    engine: Engine
    generation: GenerationDefaults
    max_context: int
    max_concurrent_requests: int
    logging: bool
    pii_masking: bool
    state: DeploymentState
    state_reason: str
    ready_replicas: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., display_name: _Optional[str] = ..., model_version: _Optional[str] = ..., serving_version: _Optional[str] = ..., base_model_version: _Optional[str] = ..., replicas: _Optional[int] = ..., engine: _Optional[_Union[Engine, str]] = ..., generation: _Optional[_Union[GenerationDefaults, _Mapping]] = ..., max_context: _Optional[int] = ..., max_concurrent_requests: _Optional[int] = ..., logging: _Optional[bool] = ..., pii_masking: _Optional[bool] = ..., state: _Optional[_Union[DeploymentState, str]] = ..., state_reason: _Optional[str] = ..., ready_replicas: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("rating", "correction", "comment", "tags", "time")
    RATING_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    rating: Rating
    correction: str
    comment: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    time: _timestamp_pb2.Timestamp
    def __init__(self, rating: _Optional[_Union[Rating, str]] = ..., correction: _Optional[str] = ..., comment: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CallLog(_message.Message):
    __slots__ = ("name", "id", "time", "model_version", "messages", "answer", "parameters", "status", "latency_ms", "time_to_first_token_ms", "usage", "stream", "feedback")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    time: _timestamp_pb2.Timestamp
    model_version: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    answer: str
    parameters: _struct_pb2.Struct
    status: str
    latency_ms: float
    time_to_first_token_ms: float
    usage: Usage
    stream: bool
    feedback: Feedback
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model_version: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., answer: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[str] = ..., latency_ms: _Optional[float] = ..., time_to_first_token_ms: _Optional[float] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., stream: _Optional[bool] = ..., feedback: _Optional[_Union[Feedback, _Mapping]] = ...) -> None: ...

class HourlyStats(_message.Message):
    __slots__ = ("start_time", "requests", "errors", "prompt_tokens", "completion_tokens", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "time_to_first_token_ms_p50", "time_to_first_token_ms_p95", "time_to_first_token_ms_p99")
    class ErrorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_P95_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_P99_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_MS_P50_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_MS_P95_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_MS_P99_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    requests: int
    errors: _containers.ScalarMap[str, int]
    prompt_tokens: int
    completion_tokens: int
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    time_to_first_token_ms_p50: float
    time_to_first_token_ms_p95: float
    time_to_first_token_ms_p99: float
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requests: _Optional[int] = ..., errors: _Optional[_Mapping[str, int]] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., latency_ms_p50: _Optional[float] = ..., latency_ms_p95: _Optional[float] = ..., latency_ms_p99: _Optional[float] = ..., time_to_first_token_ms_p50: _Optional[float] = ..., time_to_first_token_ms_p95: _Optional[float] = ..., time_to_first_token_ms_p99: _Optional[float] = ...) -> None: ...

class DeploymentStats(_message.Message):
    __slots__ = ("deployment", "hours", "total")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    hours: _containers.RepeatedCompositeFieldContainer[HourlyStats]
    total: HourlyStats
    def __init__(self, deployment: _Optional[str] = ..., hours: _Optional[_Iterable[_Union[HourlyStats, _Mapping]]] = ..., total: _Optional[_Union[HourlyStats, _Mapping]] = ...) -> None: ...
