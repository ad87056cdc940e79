from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from tuneforge.data.v1 import augmentation_pb2 as _augmentation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateTeacherRequest(_message.Message):
    __slots__ = ("parent", "teacher_id", "teacher", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    TEACHER_ID_FIELD_NUMBER: _ClassVar[int]
    TEACHER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    teacher_id: str
    teacher: _augmentation_pb2.Teacher
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., teacher_id: _Optional[str] = ..., teacher: _Optional[_Union[_augmentation_pb2.Teacher, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetTeacherRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListTeachersRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTeachersResponse(_message.Message):
    __slots__ = ("teachers", "next_page_token")
    TEACHERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    teachers: _containers.RepeatedCompositeFieldContainer[_augmentation_pb2.Teacher]
    next_page_token: str
    def __init__(self, teachers: _Optional[_Iterable[_Union[_augmentation_pb2.Teacher, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateTeacherRequest(_message.Message):
    __slots__ = ("teacher", "update_mask")
    TEACHER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    teacher: _augmentation_pb2.Teacher
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, teacher: _Optional[_Union[_augmentation_pb2.Teacher, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteTeacherRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListAugmentationTemplatesRequest(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: _augmentation_pb2.AugmentationOperation
    def __init__(self, operation: _Optional[_Union[_augmentation_pb2.AugmentationOperation, str]] = ...) -> None: ...

class ListAugmentationTemplatesResponse(_message.Message):
    __slots__ = ("templates",)
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[_augmentation_pb2.AugmentationTemplate]
    def __init__(self, templates: _Optional[_Iterable[_Union[_augmentation_pb2.AugmentationTemplate, _Mapping]]] = ...) -> None: ...

class CreateAugmentationRunRequest(_message.Message):
    __slots__ = ("parent", "augmentation_run_id", "augmentation_run", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    AUGMENTATION_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AUGMENTATION_RUN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    augmentation_run_id: str
    augmentation_run: _augmentation_pb2.AugmentationRun
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., augmentation_run_id: _Optional[str] = ..., augmentation_run: _Optional[_Union[_augmentation_pb2.AugmentationRun, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetAugmentationRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListAugmentationRunsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAugmentationRunsResponse(_message.Message):
    __slots__ = ("augmentation_runs", "next_page_token")
    AUGMENTATION_RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    augmentation_runs: _containers.RepeatedCompositeFieldContainer[_augmentation_pb2.AugmentationRun]
    next_page_token: str
    def __init__(self, augmentation_runs: _Optional[_Iterable[_Union[_augmentation_pb2.AugmentationRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchAugmentationRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelAugmentationRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateAnnotationTaskRequest(_message.Message):
    __slots__ = ("parent", "annotation_task_id", "annotation_task", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    ANNOTATION_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ANNOTATION_TASK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    annotation_task_id: str
    annotation_task: _augmentation_pb2.AnnotationTask
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., annotation_task_id: _Optional[str] = ..., annotation_task: _Optional[_Union[_augmentation_pb2.AnnotationTask, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetAnnotationTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListAnnotationTasksRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAnnotationTasksResponse(_message.Message):
    __slots__ = ("annotation_tasks", "next_page_token")
    ANNOTATION_TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    annotation_tasks: _containers.RepeatedCompositeFieldContainer[_augmentation_pb2.AnnotationTask]
    next_page_token: str
    def __init__(self, annotation_tasks: _Optional[_Iterable[_Union[_augmentation_pb2.AnnotationTask, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchAnnotationTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelAnnotationTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListAnnotationItemsRequest(_message.Message):
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

class ListAnnotationItemsResponse(_message.Message):
    __slots__ = ("annotation_items", "next_page_token")
    ANNOTATION_ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    annotation_items: _containers.RepeatedCompositeFieldContainer[_augmentation_pb2.AnnotationItem]
    next_page_token: str
    def __init__(self, annotation_items: _Optional[_Iterable[_Union[_augmentation_pb2.AnnotationItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReviewAnnotationItemRequest(_message.Message):
    __slots__ = ("name", "annotator", "action", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    annotator: str
    action: _augmentation_pb2.ReviewAction
    value: _augmentation_pb2.AnnotationValue
    def __init__(self, name: _Optional[str] = ..., annotator: _Optional[str] = ..., action: _Optional[_Union[_augmentation_pb2.ReviewAction, str]] = ..., value: _Optional[_Union[_augmentation_pb2.AnnotationValue, _Mapping]] = ...) -> None: ...

class FinishAnnotationTaskRequest(_message.Message):
    __slots__ = ("name", "output_dataset", "include_unreviewed", "min_score", "keep_labels", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DATASET_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNREVIEWED_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    KEEP_LABELS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    output_dataset: str
    include_unreviewed: bool
    min_score: int
    keep_labels: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, name: _Optional[str] = ..., output_dataset: _Optional[str] = ..., include_unreviewed: _Optional[bool] = ..., min_score: _Optional[int] = ..., keep_labels: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...
