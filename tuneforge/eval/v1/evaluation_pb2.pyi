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

class EvaluationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVALUATION_STATE_UNSPECIFIED: _ClassVar[EvaluationState]
    EVALUATION_STATE_QUEUED: _ClassVar[EvaluationState]
    EVALUATION_STATE_RUNNING: _ClassVar[EvaluationState]
    EVALUATION_STATE_SUCCEEDED: _ClassVar[EvaluationState]
    EVALUATION_STATE_FAILED: _ClassVar[EvaluationState]
    EVALUATION_STATE_CANCELLED: _ClassVar[EvaluationState]
EVALUATION_STATE_UNSPECIFIED: EvaluationState
EVALUATION_STATE_QUEUED: EvaluationState
EVALUATION_STATE_RUNNING: EvaluationState
EVALUATION_STATE_SUCCEEDED: EvaluationState
EVALUATION_STATE_FAILED: EvaluationState
EVALUATION_STATE_CANCELLED: EvaluationState

class Metric(_message.Message):
    __slots__ = ("name", "description", "needs_reference", "lower_is_better")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NEEDS_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    LOWER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    needs_reference: bool
    lower_is_better: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., needs_reference: _Optional[bool] = ..., lower_is_better: _Optional[bool] = ...) -> None: ...

class GenerationConfig(_message.Message):
    __slots__ = ("max_new_tokens", "temperature", "top_p", "batch_size", "seed")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    batch_size: int
    seed: int
    def __init__(self, max_new_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., batch_size: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class ModelResult(_message.Message):
    __slots__ = ("model_version", "metrics", "delta_vs_baseline", "samples", "tokens_per_second", "judge_score", "judge_scored", "judge_parse_failures", "unscored", "capped_samples", "pass_rates", "truncated_prompts", "grader_errors")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class DeltaVsBaselineEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class UnscoredEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class PassRatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class GraderErrorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    DELTA_VS_BASELINE_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    JUDGE_SCORE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_SCORED_FIELD_NUMBER: _ClassVar[int]
    JUDGE_PARSE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    UNSCORED_FIELD_NUMBER: _ClassVar[int]
    CAPPED_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PASS_RATES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    GRADER_ERRORS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    metrics: _containers.ScalarMap[str, float]
    delta_vs_baseline: _containers.ScalarMap[str, float]
    samples: int
    tokens_per_second: float
    judge_score: float
    judge_scored: int
    judge_parse_failures: int
    unscored: _containers.ScalarMap[str, int]
    capped_samples: int
    pass_rates: _containers.ScalarMap[str, float]
    truncated_prompts: int
    grader_errors: _containers.ScalarMap[str, int]
    def __init__(self, model_version: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., delta_vs_baseline: _Optional[_Mapping[str, float]] = ..., samples: _Optional[int] = ..., tokens_per_second: _Optional[float] = ..., judge_score: _Optional[float] = ..., judge_scored: _Optional[int] = ..., judge_parse_failures: _Optional[int] = ..., unscored: _Optional[_Mapping[str, int]] = ..., capped_samples: _Optional[int] = ..., pass_rates: _Optional[_Mapping[str, float]] = ..., truncated_prompts: _Optional[int] = ..., grader_errors: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ScoreRule(_message.Message):
    __slots__ = ("regex", "json_path")
    REGEX_FIELD_NUMBER: _ClassVar[int]
    JSON_PATH_FIELD_NUMBER: _ClassVar[int]
    regex: str
    json_path: str
    def __init__(self, regex: _Optional[str] = ..., json_path: _Optional[str] = ...) -> None: ...

class PythonGrader(_message.Message):
    __slots__ = ("source", "timeout_seconds", "memory_mb")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    source: str
    timeout_seconds: float
    memory_mb: int
    def __init__(self, source: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., memory_mb: _Optional[int] = ...) -> None: ...

class JudgeConfig(_message.Message):
    __slots__ = ("model_version", "endpoint", "endpoint_model", "rubric", "pairwise", "max_new_tokens")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_MODEL_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_FIELD_NUMBER: _ClassVar[int]
    PAIRWISE_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    endpoint: str
    endpoint_model: str
    rubric: str
    pairwise: bool
    max_new_tokens: int
    def __init__(self, model_version: _Optional[str] = ..., endpoint: _Optional[str] = ..., endpoint_model: _Optional[str] = ..., rubric: _Optional[str] = ..., pairwise: _Optional[bool] = ..., max_new_tokens: _Optional[int] = ...) -> None: ...

class PairwiseResult(_message.Message):
    __slots__ = ("baseline", "model_version", "wins", "ties", "losses", "adjusted_win_rate", "parse_failures")
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    WINS_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    ADJUSTED_WIN_RATE_FIELD_NUMBER: _ClassVar[int]
    PARSE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    baseline: str
    model_version: str
    wins: int
    ties: int
    losses: int
    adjusted_win_rate: float
    parse_failures: int
    def __init__(self, baseline: _Optional[str] = ..., model_version: _Optional[str] = ..., wins: _Optional[int] = ..., ties: _Optional[int] = ..., losses: _Optional[int] = ..., adjusted_win_rate: _Optional[float] = ..., parse_failures: _Optional[int] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("name", "uid", "display_name", "state", "model_versions", "dataset_version", "metrics", "generation", "results", "error", "total_samples", "done_samples", "create_time", "end_time", "judge", "pairwise", "score_rule", "pass_thresholds", "python_grader", "graders", "grader_endpoint")
    class PassThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DONE_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    PAIRWISE_FIELD_NUMBER: _ClassVar[int]
    SCORE_RULE_FIELD_NUMBER: _ClassVar[int]
    PASS_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    PYTHON_GRADER_FIELD_NUMBER: _ClassVar[int]
    GRADERS_FIELD_NUMBER: _ClassVar[int]
    GRADER_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    display_name: str
    state: EvaluationState
    model_versions: _containers.RepeatedScalarFieldContainer[str]
    dataset_version: str
    metrics: _containers.RepeatedScalarFieldContainer[str]
    generation: GenerationConfig
    results: _containers.RepeatedCompositeFieldContainer[ModelResult]
    error: str
    total_samples: int
    done_samples: int
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    judge: JudgeConfig
    pairwise: _containers.RepeatedCompositeFieldContainer[PairwiseResult]
    score_rule: ScoreRule
    pass_thresholds: _containers.ScalarMap[str, float]
    python_grader: PythonGrader
    graders: _containers.RepeatedScalarFieldContainer[str]
    grader_endpoint: str
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., display_name: _Optional[str] = ..., state: _Optional[_Union[EvaluationState, str]] = ..., model_versions: _Optional[_Iterable[str]] = ..., dataset_version: _Optional[str] = ..., metrics: _Optional[_Iterable[str]] = ..., generation: _Optional[_Union[GenerationConfig, _Mapping]] = ..., results: _Optional[_Iterable[_Union[ModelResult, _Mapping]]] = ..., error: _Optional[str] = ..., total_samples: _Optional[int] = ..., done_samples: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., judge: _Optional[_Union[JudgeConfig, _Mapping]] = ..., pairwise: _Optional[_Iterable[_Union[PairwiseResult, _Mapping]]] = ..., score_rule: _Optional[_Union[ScoreRule, _Mapping]] = ..., pass_thresholds: _Optional[_Mapping[str, float]] = ..., python_grader: _Optional[_Union[PythonGrader, _Mapping]] = ..., graders: _Optional[_Iterable[str]] = ..., grader_endpoint: _Optional[str] = ...) -> None: ...

class SamplePrediction(_message.Message):
    __slots__ = ("sample_id", "model_version", "prompt", "reference", "prediction", "scores")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    model_version: str
    prompt: str
    reference: str
    prediction: str
    scores: _containers.ScalarMap[str, float]
    def __init__(self, sample_id: _Optional[str] = ..., model_version: _Optional[str] = ..., prompt: _Optional[str] = ..., reference: _Optional[str] = ..., prediction: _Optional[str] = ..., scores: _Optional[_Mapping[str, float]] = ...) -> None: ...

class RatingTask(_message.Message):
    __slots__ = ("name", "kind", "model_versions", "scale", "items", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    model_versions: _containers.RepeatedScalarFieldContainer[str]
    scale: int
    items: int
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., model_versions: _Optional[_Iterable[str]] = ..., scale: _Optional[int] = ..., items: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RatingItem(_message.Message):
    __slots__ = ("sample_id", "prompt", "reference", "answers")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    prompt: str
    reference: str
    answers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sample_id: _Optional[str] = ..., prompt: _Optional[str] = ..., reference: _Optional[str] = ..., answers: _Optional[_Iterable[str]] = ...) -> None: ...

class RatingSummary(_message.Message):
    __slots__ = ("rating_task", "ratings", "raters", "mean_score", "share_a", "share_b", "share_tie", "percent_agreement", "fleiss_kappa", "items_with_agreement")
    RATING_TASK_FIELD_NUMBER: _ClassVar[int]
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    RATERS_FIELD_NUMBER: _ClassVar[int]
    MEAN_SCORE_FIELD_NUMBER: _ClassVar[int]
    SHARE_A_FIELD_NUMBER: _ClassVar[int]
    SHARE_B_FIELD_NUMBER: _ClassVar[int]
    SHARE_TIE_FIELD_NUMBER: _ClassVar[int]
    PERCENT_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    FLEISS_KAPPA_FIELD_NUMBER: _ClassVar[int]
    ITEMS_WITH_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    rating_task: str
    ratings: int
    raters: int
    mean_score: float
    share_a: float
    share_b: float
    share_tie: float
    percent_agreement: float
    fleiss_kappa: float
    items_with_agreement: int
    def __init__(self, rating_task: _Optional[str] = ..., ratings: _Optional[int] = ..., raters: _Optional[int] = ..., mean_score: _Optional[float] = ..., share_a: _Optional[float] = ..., share_b: _Optional[float] = ..., share_tie: _Optional[float] = ..., percent_agreement: _Optional[float] = ..., fleiss_kappa: _Optional[float] = ..., items_with_agreement: _Optional[int] = ...) -> None: ...

class EvaluationReport(_message.Message):
    __slots__ = ("evaluation", "report", "charts")
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    CHARTS_FIELD_NUMBER: _ClassVar[int]
    evaluation: str
    report: _struct_pb2.Struct
    charts: _containers.RepeatedCompositeFieldContainer[_common_pb2.PresignedUrl]
    def __init__(self, evaluation: _Optional[str] = ..., report: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., charts: _Optional[_Iterable[_Union[_common_pb2.PresignedUrl, _Mapping]]] = ...) -> None: ...
