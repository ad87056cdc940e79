"""The AugmentationService's gRPC edge (served by the data service): thin handlers over teachers,
augmentation runs and annotation tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf import empty_pb2

from services.data.annotations import Annotations
from services.data.augment_convert import OPERATION_FROM_PROTO, OPERATION_TO_PROTO
from services.data.augment_ops import TEMPLATES
from services.data.augment_templates import DEFAULTS
from services.data.augmentations import Augmentations
from services.data.convert import enum_from_proto
from services.data.teachers import Teachers
from tuneforge.data.v1 import augmentation_pb2, augmentation_service_pb2, augmentation_service_pb2_grpc

Context = grpc.aio.ServicerContext
S = augmentation_service_pb2


class AugmentationServicer(augmentation_service_pb2_grpc.AugmentationServiceServicer):
    def __init__(self, teachers: Teachers, runs: Augmentations, annotations: Annotations) -> None:
        self.teachers = teachers
        self.runs = runs
        self.annotations = annotations

    # -- teachers ------------------------------------------------------------------------------

    async def CreateTeacher(
        self, request: S.CreateTeacherRequest, context: Context
    ) -> augmentation_pb2.Teacher:
        return await self.teachers.create(
            request.parent, request.teacher_id, request.teacher, request.request_id
        )

    async def GetTeacher(self, request: S.GetTeacherRequest, context: Context) -> augmentation_pb2.Teacher:
        return await self.teachers.get(request.name)

    async def ListTeachers(self, request: S.ListTeachersRequest, context: Context) -> S.ListTeachersResponse:
        items, token = await self.teachers.list(request.parent, request.page_size, request.page_token)
        return S.ListTeachersResponse(teachers=items, next_page_token=token)

    async def UpdateTeacher(
        self, request: S.UpdateTeacherRequest, context: Context
    ) -> augmentation_pb2.Teacher:
        return await self.teachers.update(request.teacher, list(request.update_mask.paths))

    async def DeleteTeacher(self, request: S.DeleteTeacherRequest, context: Context) -> empty_pb2.Empty:
        await self.teachers.delete(request.name)
        return empty_pb2.Empty()

    async def ListAugmentationTemplates(
        self, request: S.ListAugmentationTemplatesRequest, context: Context
    ) -> S.ListAugmentationTemplatesResponse:
        only = enum_from_proto(request.operation, OPERATION_FROM_PROTO, "operation")
        out = []
        for template in DEFAULTS.values():
            operations = [op for op, names in TEMPLATES.items() if template.name in names]
            if template.name == "judge":
                operations = list(TEMPLATES)  # judge_min_score asks it in every operation
            if only is not None and only not in operations:
                continue
            out.append(
                augmentation_pb2.AugmentationTemplate(
                    name=template.name,
                    operations=[OPERATION_TO_PROTO[op] for op in operations],
                    text=template.text,
                    description=template.description,
                    fields=list(template.extra),
                )
            )
        return S.ListAugmentationTemplatesResponse(templates=out)

    # -- augmentation runs ---------------------------------------------------------------------

    async def CreateAugmentationRun(
        self, request: S.CreateAugmentationRunRequest, context: Context
    ) -> augmentation_pb2.AugmentationRun:
        return await self.runs.create(
            request.parent, request.augmentation_run_id, request.augmentation_run, request.request_id
        )

    async def GetAugmentationRun(
        self, request: S.GetAugmentationRunRequest, context: Context
    ) -> augmentation_pb2.AugmentationRun:
        return await self.runs.get(request.name)

    async def ListAugmentationRuns(
        self, request: S.ListAugmentationRunsRequest, context: Context
    ) -> S.ListAugmentationRunsResponse:
        items, token = await self.runs.list(request.parent, request.page_size, request.page_token)
        return S.ListAugmentationRunsResponse(augmentation_runs=items, next_page_token=token)

    async def WatchAugmentationRun(
        self, request: S.WatchAugmentationRunRequest, context: Context
    ) -> AsyncIterator[augmentation_pb2.AugmentationRun]:
        async for run in self.runs.watch(request.name):
            yield run

    async def CancelAugmentationRun(
        self, request: S.CancelAugmentationRunRequest, context: Context
    ) -> augmentation_pb2.AugmentationRun:
        return await self.runs.cancel(request.name)

    # -- annotation ----------------------------------------------------------------------------

    async def CreateAnnotationTask(
        self, request: S.CreateAnnotationTaskRequest, context: Context
    ) -> augmentation_pb2.AnnotationTask:
        return await self.annotations.create(
            request.parent, request.annotation_task_id, request.annotation_task, request.request_id
        )

    async def GetAnnotationTask(
        self, request: S.GetAnnotationTaskRequest, context: Context
    ) -> augmentation_pb2.AnnotationTask:
        return await self.annotations.get(request.name)

    async def ListAnnotationTasks(
        self, request: S.ListAnnotationTasksRequest, context: Context
    ) -> S.ListAnnotationTasksResponse:
        items, token = await self.annotations.list(request.parent, request.page_size, request.page_token)
        return S.ListAnnotationTasksResponse(annotation_tasks=items, next_page_token=token)

    async def WatchAnnotationTask(
        self, request: S.WatchAnnotationTaskRequest, context: Context
    ) -> AsyncIterator[augmentation_pb2.AnnotationTask]:
        async for task in self.annotations.watch(request.name):
            yield task

    async def CancelAnnotationTask(
        self, request: S.CancelAnnotationTaskRequest, context: Context
    ) -> augmentation_pb2.AnnotationTask:
        return await self.annotations.cancel(request.name)

    async def ListAnnotationItems(
        self, request: S.ListAnnotationItemsRequest, context: Context
    ) -> S.ListAnnotationItemsResponse:
        items, token = await self.annotations.items(
            request.parent, request.page_size, request.page_token, request.filter
        )
        return S.ListAnnotationItemsResponse(annotation_items=items, next_page_token=token)

    async def ReviewAnnotationItem(
        self, request: S.ReviewAnnotationItemRequest, context: Context
    ) -> augmentation_pb2.AnnotationItem:
        return await self.annotations.review(request.name, request.annotator, request.action, request.value)

    async def FinishAnnotationTask(
        self, request: S.FinishAnnotationTaskRequest, context: Context
    ) -> augmentation_pb2.AnnotationTask:
        return await self.annotations.finish(request)
