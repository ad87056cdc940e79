import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tuneforge.train.v1 import training_job_pb2 as _training_job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListWorkersRequest(_message.Message):
    __slots__ = ("include_lost",)
    INCLUDE_LOST_FIELD_NUMBER: _ClassVar[int]
    include_lost: bool
    def __init__(self, include_lost: _Optional[bool] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[Worker]
    def __init__(self, workers: _Optional[_Iterable[_Union[Worker, _Mapping]]] = ...) -> None: ...

class Worker(_message.Message):
    __slots__ = ("name", "accelerator_kind", "accelerators", "accelerator_memory_bytes", "host_memory_bytes", "backends", "device_names", "live", "busy", "current_job", "heartbeat_time", "start_time", "versions", "ray_nodes", "ray_accelerators_per_node")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_KIND_FIELD_NUMBER: _ClassVar[int]
    ACCELERATORS_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    HOST_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAMES_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_JOB_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    RAY_NODES_FIELD_NUMBER: _ClassVar[int]
    RAY_ACCELERATORS_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    accelerator_kind: str
    accelerators: int
    accelerator_memory_bytes: int
    host_memory_bytes: int
    backends: _containers.RepeatedScalarFieldContainer[str]
    device_names: _containers.RepeatedScalarFieldContainer[str]
    live: bool
    busy: bool
    current_job: str
    heartbeat_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    versions: _containers.ScalarMap[str, str]
    ray_nodes: int
    ray_accelerators_per_node: int
    def __init__(self, name: _Optional[str] = ..., accelerator_kind: _Optional[str] = ..., accelerators: _Optional[int] = ..., accelerator_memory_bytes: _Optional[int] = ..., host_memory_bytes: _Optional[int] = ..., backends: _Optional[_Iterable[str]] = ..., device_names: _Optional[_Iterable[str]] = ..., live: _Optional[bool] = ..., busy: _Optional[bool] = ..., current_job: _Optional[str] = ..., heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., versions: _Optional[_Mapping[str, str]] = ..., ray_nodes: _Optional[int] = ..., ray_accelerators_per_node: _Optional[int] = ...) -> None: ...

class GetTrainingReportRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RegisterCheckpointRequest(_message.Message):
    __slots__ = ("name", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RegisterCheckpointResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    def __init__(self, model_version: _Optional[str] = ...) -> None: ...

class CreateTrainingJobRequest(_message.Message):
    __slots__ = ("parent", "training_job_id", "training_job", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    training_job_id: str
    training_job: _training_job_pb2.TrainingJob
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., training_job_id: _Optional[str] = ..., training_job: _Optional[_Union[_training_job_pb2.TrainingJob, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetTrainingJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListTrainingJobsRequest(_message.Message):
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

class ListTrainingJobsResponse(_message.Message):
    __slots__ = ("training_jobs", "next_page_token")
    TRAINING_JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    training_jobs: _containers.RepeatedCompositeFieldContainer[_training_job_pb2.TrainingJob]
    next_page_token: str
    def __init__(self, training_jobs: _Optional[_Iterable[_Union[_training_job_pb2.TrainingJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelTrainingJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchTrainingJobRequest(_message.Message):
    __slots__ = ("name", "after_step")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_STEP_FIELD_NUMBER: _ClassVar[int]
    name: str
    after_step: int
    def __init__(self, name: _Optional[str] = ..., after_step: _Optional[int] = ...) -> None: ...

class WatchTrainingJobResponse(_message.Message):
    __slots__ = ("training_job", "metric_point")
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    METRIC_POINT_FIELD_NUMBER: _ClassVar[int]
    training_job: _training_job_pb2.TrainingJob
    metric_point: _training_job_pb2.MetricPoint
    def __init__(self, training_job: _Optional[_Union[_training_job_pb2.TrainingJob, _Mapping]] = ..., metric_point: _Optional[_Union[_training_job_pb2.MetricPoint, _Mapping]] = ...) -> None: ...

class ListCheckpointsRequest(_message.Message):
    __slots__ = ("parent",)
    PARENT_FIELD_NUMBER: _ClassVar[int]
    parent: str
    def __init__(self, parent: _Optional[str] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints",)
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[_training_job_pb2.Checkpoint]
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[_training_job_pb2.Checkpoint, _Mapping]]] = ...) -> None: ...

class ListMetricPointsRequest(_message.Message):
    __slots__ = ("parent",)
    PARENT_FIELD_NUMBER: _ClassVar[int]
    parent: str
    def __init__(self, parent: _Optional[str] = ...) -> None: ...

class ListMetricPointsResponse(_message.Message):
    __slots__ = ("metric_points",)
    METRIC_POINTS_FIELD_NUMBER: _ClassVar[int]
    metric_points: _containers.RepeatedCompositeFieldContainer[_training_job_pb2.MetricPoint]
    def __init__(self, metric_points: _Optional[_Iterable[_Union[_training_job_pb2.MetricPoint, _Mapping]]] = ...) -> None: ...
