from tuneforge.train.v1 import training_job_pb2 as _training_job_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingJobEvent(_message.Message):
    __slots__ = ("training_job",)
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    training_job: _training_job_pb2.TrainingJob
    def __init__(self, training_job: _Optional[_Union[_training_job_pb2.TrainingJob, _Mapping]] = ...) -> None: ...

class TrainingMetricsEvent(_message.Message):
    __slots__ = ("training_job", "metric_point")
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    METRIC_POINT_FIELD_NUMBER: _ClassVar[int]
    training_job: str
    metric_point: _training_job_pb2.MetricPoint
    def __init__(self, training_job: _Optional[str] = ..., metric_point: _Optional[_Union[_training_job_pb2.MetricPoint, _Mapping]] = ...) -> None: ...

class CheckpointEvent(_message.Message):
    __slots__ = ("training_job", "checkpoint")
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    training_job: str
    checkpoint: _training_job_pb2.Checkpoint
    def __init__(self, training_job: _Optional[str] = ..., checkpoint: _Optional[_Union[_training_job_pb2.Checkpoint, _Mapping]] = ...) -> None: ...
