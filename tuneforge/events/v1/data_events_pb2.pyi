from tuneforge.data.v1 import augmentation_pb2 as _augmentation_pb2
from tuneforge.data.v1 import dataset_pb2 as _dataset_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatasetEvent(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: _dataset_pb2.Dataset
    def __init__(self, dataset: _Optional[_Union[_dataset_pb2.Dataset, _Mapping]] = ...) -> None: ...

class DatasetVersionEvent(_message.Message):
    __slots__ = ("dataset_version",)
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    dataset_version: _dataset_pb2.DatasetVersion
    def __init__(self, dataset_version: _Optional[_Union[_dataset_pb2.DatasetVersion, _Mapping]] = ...) -> None: ...

class DatasetInsightEvent(_message.Message):
    __slots__ = ("dataset_insight",)
    DATASET_INSIGHT_FIELD_NUMBER: _ClassVar[int]
    dataset_insight: _dataset_pb2.DatasetInsight
    def __init__(self, dataset_insight: _Optional[_Union[_dataset_pb2.DatasetInsight, _Mapping]] = ...) -> None: ...

class MixtureEvent(_message.Message):
    __slots__ = ("mixture",)
    MIXTURE_FIELD_NUMBER: _ClassVar[int]
    mixture: _dataset_pb2.Mixture
    def __init__(self, mixture: _Optional[_Union[_dataset_pb2.Mixture, _Mapping]] = ...) -> None: ...

class TeacherEvent(_message.Message):
    __slots__ = ("teacher",)
    TEACHER_FIELD_NUMBER: _ClassVar[int]
    teacher: _augmentation_pb2.Teacher
    def __init__(self, teacher: _Optional[_Union[_augmentation_pb2.Teacher, _Mapping]] = ...) -> None: ...

class AugmentationRunEvent(_message.Message):
    __slots__ = ("augmentation_run",)
    AUGMENTATION_RUN_FIELD_NUMBER: _ClassVar[int]
    augmentation_run: _augmentation_pb2.AugmentationRun
    def __init__(self, augmentation_run: _Optional[_Union[_augmentation_pb2.AugmentationRun, _Mapping]] = ...) -> None: ...

class AnnotationTaskEvent(_message.Message):
    __slots__ = ("annotation_task",)
    ANNOTATION_TASK_FIELD_NUMBER: _ClassVar[int]
    annotation_task: _augmentation_pb2.AnnotationTask
    def __init__(self, annotation_task: _Optional[_Union[_augmentation_pb2.AnnotationTask, _Mapping]] = ...) -> None: ...
