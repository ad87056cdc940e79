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

class TrainingJobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_JOB_STATE_UNSPECIFIED: _ClassVar[TrainingJobState]
    TRAINING_JOB_STATE_QUEUED: _ClassVar[TrainingJobState]
    TRAINING_JOB_STATE_RUNNING: _ClassVar[TrainingJobState]
    TRAINING_JOB_STATE_SUCCEEDED: _ClassVar[TrainingJobState]
    TRAINING_JOB_STATE_FAILED: _ClassVar[TrainingJobState]
    TRAINING_JOB_STATE_CANCELLED: _ClassVar[TrainingJobState]
    TRAINING_JOB_STATE_PREEMPTED: _ClassVar[TrainingJobState]

class TrainingMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_METHOD_UNSPECIFIED: _ClassVar[TrainingMethod]
    TRAINING_METHOD_POST_PRETRAIN: _ClassVar[TrainingMethod]
    TRAINING_METHOD_SFT: _ClassVar[TrainingMethod]
    TRAINING_METHOD_DPO: _ClassVar[TrainingMethod]
    TRAINING_METHOD_ORPO: _ClassVar[TrainingMethod]
    TRAINING_METHOD_KTO: _ClassVar[TrainingMethod]
    TRAINING_METHOD_GRPO: _ClassVar[TrainingMethod]
    TRAINING_METHOD_REWARD_MODEL: _ClassVar[TrainingMethod]

class TuningMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TUNING_MODE_UNSPECIFIED: _ClassVar[TuningMode]
    TUNING_MODE_LORA: _ClassVar[TuningMode]
    TUNING_MODE_FULL: _ClassVar[TuningMode]
    TUNING_MODE_QLORA: _ClassVar[TuningMode]

class JobPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_PRIORITY_UNSPECIFIED: _ClassVar[JobPriority]
    JOB_PRIORITY_NORMAL: _ClassVar[JobPriority]
    JOB_PRIORITY_IDLE: _ClassVar[JobPriority]
TRAINING_JOB_STATE_UNSPECIFIED: TrainingJobState
TRAINING_JOB_STATE_QUEUED: TrainingJobState
TRAINING_JOB_STATE_RUNNING: TrainingJobState
TRAINING_JOB_STATE_SUCCEEDED: TrainingJobState
TRAINING_JOB_STATE_FAILED: TrainingJobState
TRAINING_JOB_STATE_CANCELLED: TrainingJobState
TRAINING_JOB_STATE_PREEMPTED: TrainingJobState
TRAINING_METHOD_UNSPECIFIED: TrainingMethod
TRAINING_METHOD_POST_PRETRAIN: TrainingMethod
TRAINING_METHOD_SFT: TrainingMethod
TRAINING_METHOD_DPO: TrainingMethod
TRAINING_METHOD_ORPO: TrainingMethod
TRAINING_METHOD_KTO: TrainingMethod
TRAINING_METHOD_GRPO: TrainingMethod
TRAINING_METHOD_REWARD_MODEL: TrainingMethod
TUNING_MODE_UNSPECIFIED: TuningMode
TUNING_MODE_LORA: TuningMode
TUNING_MODE_FULL: TuningMode
TUNING_MODE_QLORA: TuningMode
JOB_PRIORITY_UNSPECIFIED: JobPriority
JOB_PRIORITY_NORMAL: JobPriority
JOB_PRIORITY_IDLE: JobPriority

class LoraConfig(_message.Message):
    __slots__ = ("rank", "alpha", "dropout", "target_modules")
    RANK_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    rank: int
    alpha: int
    dropout: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rank: _Optional[int] = ..., alpha: _Optional[int] = ..., dropout: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ...) -> None: ...

class EarlyStopping(_message.Message):
    __slots__ = ("patience", "min_delta")
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_DELTA_FIELD_NUMBER: _ClassVar[int]
    patience: int
    min_delta: float
    def __init__(self, patience: _Optional[int] = ..., min_delta: _Optional[float] = ...) -> None: ...

class Hyperparameters(_message.Message):
    __slots__ = ("epochs", "learning_rate", "batch_size", "max_sequence_length", "truncate_overlength", "checkpoint_count", "checkpoint_interval_steps", "validation_interval_steps", "early_stopping", "warmup_ratio", "scheduler", "weight_decay", "gradient_accumulation_steps", "seed", "packing", "ignore_loss_anomalies", "prompt_truncation")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_OVERLENGTH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_INTERVAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_INTERVAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    WARMUP_RATIO_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_ACCUMULATION_STEPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PACKING_FIELD_NUMBER: _ClassVar[int]
    IGNORE_LOSS_ANOMALIES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    epochs: float
    learning_rate: float
    batch_size: int
    max_sequence_length: int
    truncate_overlength: bool
    checkpoint_count: int
    checkpoint_interval_steps: int
    validation_interval_steps: int
    early_stopping: EarlyStopping
    warmup_ratio: float
    scheduler: str
    weight_decay: float
    gradient_accumulation_steps: int
    seed: int
    packing: bool
    ignore_loss_anomalies: bool
    prompt_truncation: str
    def __init__(self, epochs: _Optional[float] = ..., learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., max_sequence_length: _Optional[int] = ..., truncate_overlength: _Optional[bool] = ..., checkpoint_count: _Optional[int] = ..., checkpoint_interval_steps: _Optional[int] = ..., validation_interval_steps: _Optional[int] = ..., early_stopping: _Optional[_Union[EarlyStopping, _Mapping]] = ..., warmup_ratio: _Optional[float] = ..., scheduler: _Optional[str] = ..., weight_decay: _Optional[float] = ..., gradient_accumulation_steps: _Optional[int] = ..., seed: _Optional[int] = ..., packing: _Optional[bool] = ..., ignore_loss_anomalies: _Optional[bool] = ..., prompt_truncation: _Optional[str] = ...) -> None: ...

class RewardFunction(_message.Message):
    __slots__ = ("type", "pattern", "required_fields", "target_words", "weight", "grader", "endpoint")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_WORDS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    GRADER_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    type: str
    pattern: str
    required_fields: _containers.RepeatedScalarFieldContainer[str]
    target_words: int
    weight: float
    grader: str
    endpoint: str
    def __init__(self, type: _Optional[str] = ..., pattern: _Optional[str] = ..., required_fields: _Optional[_Iterable[str]] = ..., target_words: _Optional[int] = ..., weight: _Optional[float] = ..., grader: _Optional[str] = ..., endpoint: _Optional[str] = ...) -> None: ...

class MethodParameters(_message.Message):
    __slots__ = ("beta", "desirable_weight", "undesirable_weight", "num_generations", "max_completion_length", "rewards", "reward_model", "temperature", "loss_type", "importance_sampling_level", "mask_truncated_completions", "epsilon_high", "scale_rewards", "mask_reasoning")
    BETA_FIELD_NUMBER: _ClassVar[int]
    DESIRABLE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    UNDESIRABLE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    NUM_GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_COMPLETION_LENGTH_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    REWARD_MODEL_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    LOSS_TYPE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_SAMPLING_LEVEL_FIELD_NUMBER: _ClassVar[int]
    MASK_TRUNCATED_COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    EPSILON_HIGH_FIELD_NUMBER: _ClassVar[int]
    SCALE_REWARDS_FIELD_NUMBER: _ClassVar[int]
    MASK_REASONING_FIELD_NUMBER: _ClassVar[int]
    beta: float
    desirable_weight: float
    undesirable_weight: float
    num_generations: int
    max_completion_length: int
    rewards: _containers.RepeatedCompositeFieldContainer[RewardFunction]
    reward_model: str
    temperature: float
    loss_type: str
    importance_sampling_level: str
    mask_truncated_completions: bool
    epsilon_high: float
    scale_rewards: str
    mask_reasoning: bool
    def __init__(self, beta: _Optional[float] = ..., desirable_weight: _Optional[float] = ..., undesirable_weight: _Optional[float] = ..., num_generations: _Optional[int] = ..., max_completion_length: _Optional[int] = ..., rewards: _Optional[_Iterable[_Union[RewardFunction, _Mapping]]] = ..., reward_model: _Optional[str] = ..., temperature: _Optional[float] = ..., loss_type: _Optional[str] = ..., importance_sampling_level: _Optional[str] = ..., mask_truncated_completions: _Optional[bool] = ..., epsilon_high: _Optional[float] = ..., scale_rewards: _Optional[str] = ..., mask_reasoning: _Optional[bool] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class TrainingJob(_message.Message):
    __slots__ = ("name", "uid", "display_name", "state", "base_model", "method", "tuning", "lora", "training_data", "validation_data", "validation_split", "hyperparameters", "output_model", "error", "current_step", "total_steps", "overlength_samples", "final_model_version", "best_model_version", "metrics", "create_time", "start_time", "end_time", "attempt", "auto_evaluation", "priority", "method_parameters", "replay_share", "preemptions", "training_method", "tuning_mode", "job_priority", "check_only", "resources", "waiting_reason", "restarts", "worker")
    class MetricsEntry(_message.Message):
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
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TUNING_FIELD_NUMBER: _ClassVar[int]
    LORA_FIELD_NUMBER: _ClassVar[int]
    TRAINING_DATA_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DATA_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_SPLIT_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MODEL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    OVERLENGTH_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    FINAL_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BEST_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AUTO_EVALUATION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    METHOD_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REPLAY_SHARE_FIELD_NUMBER: _ClassVar[int]
    PREEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_METHOD_FIELD_NUMBER: _ClassVar[int]
    TUNING_MODE_FIELD_NUMBER: _ClassVar[int]
    JOB_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CHECK_ONLY_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    WAITING_REASON_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    display_name: str
    state: TrainingJobState
    base_model: str
    method: str
    tuning: str
    lora: LoraConfig
    training_data: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatasetVersionRef]
    validation_data: str
    validation_split: float
    hyperparameters: Hyperparameters
    output_model: str
    error: JobError
    current_step: int
    total_steps: int
    overlength_samples: int
    final_model_version: str
    best_model_version: str
    metrics: _containers.ScalarMap[str, float]
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    attempt: int
    auto_evaluation: AutoEvaluation
    priority: str
    method_parameters: MethodParameters
    replay_share: float
    preemptions: int
    training_method: TrainingMethod
    tuning_mode: TuningMode
    job_priority: JobPriority
    check_only: bool
    resources: Resources
    waiting_reason: str
    restarts: int
    worker: str
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., display_name: _Optional[str] = ..., state: _Optional[_Union[TrainingJobState, str]] = ..., base_model: _Optional[str] = ..., method: _Optional[str] = ..., tuning: _Optional[str] = ..., lora: _Optional[_Union[LoraConfig, _Mapping]] = ..., training_data: _Optional[_Iterable[_Union[_common_pb2.DatasetVersionRef, _Mapping]]] = ..., validation_data: _Optional[str] = ..., validation_split: _Optional[float] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., output_model: _Optional[str] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., current_step: _Optional[int] = ..., total_steps: _Optional[int] = ..., overlength_samples: _Optional[int] = ..., final_model_version: _Optional[str] = ..., best_model_version: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., auto_evaluation: _Optional[_Union[AutoEvaluation, _Mapping]] = ..., priority: _Optional[str] = ..., method_parameters: _Optional[_Union[MethodParameters, _Mapping]] = ..., replay_share: _Optional[float] = ..., preemptions: _Optional[int] = ..., training_method: _Optional[_Union[TrainingMethod, str]] = ..., tuning_mode: _Optional[_Union[TuningMode, str]] = ..., job_priority: _Optional[_Union[JobPriority, str]] = ..., check_only: _Optional[bool] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., waiting_reason: _Optional[str] = ..., restarts: _Optional[int] = ..., worker: _Optional[str] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("accelerators_per_node", "nodes", "accelerator_kind", "accelerator_memory_bytes")
    ACCELERATORS_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_KIND_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    accelerators_per_node: int
    nodes: int
    accelerator_kind: str
    accelerator_memory_bytes: int
    def __init__(self, accelerators_per_node: _Optional[int] = ..., nodes: _Optional[int] = ..., accelerator_kind: _Optional[str] = ..., accelerator_memory_bytes: _Optional[int] = ...) -> None: ...

class AutoEvaluation(_message.Message):
    __slots__ = ("dataset_version", "metrics")
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    dataset_version: str
    metrics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset_version: _Optional[str] = ..., metrics: _Optional[_Iterable[str]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("name", "step", "epoch", "validation_loss", "best", "files", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    step: int
    epoch: float
    validation_loss: float
    best: bool
    files: _containers.RepeatedCompositeFieldContainer[_common_pb2.FileEntry]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., step: _Optional[int] = ..., epoch: _Optional[float] = ..., validation_loss: _Optional[float] = ..., best: _Optional[bool] = ..., files: _Optional[_Iterable[_Union[_common_pb2.FileEntry, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ("step", "epoch", "loss", "validation_loss", "has_validation_loss", "learning_rate", "grad_norm", "tokens_per_second", "time", "method_metrics", "sample_ids")
    class MethodMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    HAS_VALIDATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    METHOD_METRICS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    step: int
    epoch: float
    loss: float
    validation_loss: float
    has_validation_loss: bool
    learning_rate: float
    grad_norm: float
    tokens_per_second: float
    time: _timestamp_pb2.Timestamp
    method_metrics: _containers.ScalarMap[str, float]
    sample_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, step: _Optional[int] = ..., epoch: _Optional[float] = ..., loss: _Optional[float] = ..., validation_loss: _Optional[float] = ..., has_validation_loss: _Optional[bool] = ..., learning_rate: _Optional[float] = ..., grad_norm: _Optional[float] = ..., tokens_per_second: _Optional[float] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., method_metrics: _Optional[_Mapping[str, float]] = ..., sample_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LossSpike(_message.Message):
    __slots__ = ("step", "loss", "baseline", "sample_ids")
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    step: int
    loss: float
    baseline: float
    sample_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, step: _Optional[int] = ..., loss: _Optional[float] = ..., baseline: _Optional[float] = ..., sample_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Diagnosis(_message.Message):
    __slots__ = ("verdict", "summary", "advice", "suggested_epochs", "best_checkpoint", "best_step", "spikes", "flags", "start_loss", "end_loss", "uniform_loss")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ADVICE_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    BEST_STEP_FIELD_NUMBER: _ClassVar[int]
    SPIKES_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    START_LOSS_FIELD_NUMBER: _ClassVar[int]
    END_LOSS_FIELD_NUMBER: _ClassVar[int]
    UNIFORM_LOSS_FIELD_NUMBER: _ClassVar[int]
    verdict: str
    summary: str
    advice: _containers.RepeatedScalarFieldContainer[str]
    suggested_epochs: float
    best_checkpoint: str
    best_step: int
    spikes: _containers.RepeatedCompositeFieldContainer[LossSpike]
    flags: _containers.RepeatedScalarFieldContainer[str]
    start_loss: float
    end_loss: float
    uniform_loss: float
    def __init__(self, verdict: _Optional[str] = ..., summary: _Optional[str] = ..., advice: _Optional[_Iterable[str]] = ..., suggested_epochs: _Optional[float] = ..., best_checkpoint: _Optional[str] = ..., best_step: _Optional[int] = ..., spikes: _Optional[_Iterable[_Union[LossSpike, _Mapping]]] = ..., flags: _Optional[_Iterable[str]] = ..., start_loss: _Optional[float] = ..., end_loss: _Optional[float] = ..., uniform_loss: _Optional[float] = ...) -> None: ...

class TrainingReport(_message.Message):
    __slots__ = ("training_job", "diagnosis", "report", "charts", "final")
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    CHARTS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    training_job: str
    diagnosis: Diagnosis
    report: _struct_pb2.Struct
    charts: _containers.RepeatedCompositeFieldContainer[_common_pb2.PresignedUrl]
    final: bool
    def __init__(self, training_job: _Optional[str] = ..., diagnosis: _Optional[_Union[Diagnosis, _Mapping]] = ..., report: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., charts: _Optional[_Iterable[_Union[_common_pb2.PresignedUrl, _Mapping]]] = ..., final: _Optional[bool] = ...) -> None: ...
