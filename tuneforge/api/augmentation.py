"""`client.augment` and `client.annotate`: data augmentation and smart annotation with models
(数据增强 / 智能标注), on the data service's AugmentationService.

    client.augment.create_teacher("qwen-max", base_url="https://api.example.com/v1", model="qwen-max",
                                  api_key=os.environ["KEY"])
    client.augment.create_teacher("grader", deployment="essay")        # a serve deployment
    run = client.augment.run("answer", "questions/1", into="distilled", teacher="qwen-max",
                             filters={"judge_min_score": 7})
    run = client.augment.wait(run.name)                                # SUCCEEDED with its version

    task = client.annotate.create("chats/2", kind="score", teacher="grader", score_range=(1, 5))
    for item in client.annotate.items(task.name, status="unreviewed"):
        client.annotate.review(item.name, "ana", accept=True)
    client.annotate.finish(task.name, into="chats-reviewed")
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, json_format

from tuneforge import names
from tuneforge.api._calls import call, pages
from tuneforge.data.v1 import (
    augmentation_pb2,
    augmentation_service_pb2,
    augmentation_service_pb2_grpc,
    data_service_pb2,
    data_service_pb2_grpc,
    dataset_pb2,
)
from tuneforge.enums import enum_names, enum_values
from tuneforge.errors import TuneForgeError

S = augmentation_service_pb2
OPERATIONS = enum_values(augmentation_pb2.AugmentationOperation, "AUGMENTATION_OPERATION_")
RUN_STATES = enum_names(augmentation_pb2.AugmentationState, "AUGMENTATION_STATE_")
ANNOTATION_KINDS = enum_values(augmentation_pb2.AnnotationKind, "ANNOTATION_KIND_")
TASK_STATES = enum_names(augmentation_pb2.AnnotationState, "ANNOTATION_STATE_")
ITEM_STATUSES = enum_names(augmentation_pb2.AnnotationItemStatus, "ANNOTATION_ITEM_STATUS_")
ACTIONS = enum_values(augmentation_pb2.ReviewAction, "REVIEW_ACTION_")
RUN_FINAL = ("succeeded", "failed", "cancelled")
TASK_SETTLED = ("reviewing", "finished", "failed", "cancelled")


def _choice(table: Mapping[str, int], value: str, what: str) -> int:
    if value not in table:
        raise TuneForgeError("INVALID_ARGUMENT", f"{what} {value!r} is not one of {', '.join(table)}")
    return table[value]


class _Service:
    def __init__(self, connect: Callable[[], grpc.Channel], project: str) -> None:
        self._connect = connect
        self._project = project

    @functools.cached_property
    def _stub(self) -> augmentation_service_pb2_grpc.AugmentationServiceStub:
        return augmentation_service_pb2_grpc.AugmentationServiceStub(self._connect())

    @functools.cached_property
    def _data(self) -> data_service_pb2_grpc.DataServiceStub:
        return data_service_pb2_grpc.DataServiceStub(self._connect())

    def _version_made(self, name: str) -> None:
        """Wait until the data worker has made the version `name` (READY or FAILED)."""
        stream = self._data.WatchDatasetVersion(data_service_pb2.WatchDatasetVersionRequest(name=name))
        try:
            for version in stream:
                if version.state != dataset_pb2.DATASET_VERSION_STATE_PROCESSING:
                    return
        except grpc.RpcError as error:
            raise TuneForgeError.from_rpc_error(error) from None
        finally:
            stream.cancel()

    @property
    def _parent(self) -> str:
        return f"projects/{self._project}"

    def _name(self, collection: str, ref: str) -> str:
        return ref if ref.startswith("projects/") else f"{self._parent}/{collection}/{ref}"

    def _follow(
        self, method: Any, request: Any, done: Callable[[Any], bool], timeout: float, first: Any
    ) -> Any:
        """Watch until `done`, reconnecting the stream while it ends early, up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last = first
        while not done(last):
            stream = method(request, timeout=max(1.0, deadline - time.monotonic()))
            try:
                for last in stream:
                    if done(last):
                        break
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise TuneForgeError.from_rpc_error(error) from None
            finally:
                stream.cancel()
            if not done(last) and time.monotonic() >= deadline:
                raise TuneForgeError("DEADLINE_EXCEEDED", f"{last.name} has not finished after {timeout:g} s")
        return last


class Augment(_Service):
    """Teachers and augmentation runs."""

    # -- teachers ------------------------------------------------------------------------------

    def teacher_name(self, ref: str) -> str:
        return self._name("teachers", ref)

    def create_teacher(
        self,
        teacher_id: str,
        *,
        deployment: str = "",
        base_url: str = "",
        model: str = "",
        api_key: str = "",
        display_name: str = "",
        max_concurrency: int = 0,
        requests_per_minute: float = 0.0,
        timeout_seconds: float = 0.0,
        max_retries: int | None = None,
        input_cost_per_million_tokens: float = 0.0,
        output_cost_per_million_tokens: float = 0.0,
        request_id: str | None = None,
    ) -> augmentation_pb2.Teacher:
        """A teacher: a serve `deployment` of this project (`essay` or its full name), or an
        OpenAI-compatible `base_url` with its `model` and `api_key` (stored encrypted)."""
        teacher = augmentation_pb2.Teacher(
            deployment=self._name("deployments", deployment) if deployment else "",
            base_url=base_url,
            model=model,
            api_key=api_key,
            display_name=display_name,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            timeout_seconds=timeout_seconds,
            input_cost_per_million_tokens=input_cost_per_million_tokens,
            output_cost_per_million_tokens=output_cost_per_million_tokens,
        )
        if max_retries is not None:
            teacher.max_retries = max_retries
        return call(
            self._stub.CreateTeacher,
            S.CreateTeacherRequest(
                parent=self._parent,
                teacher_id=teacher_id,
                teacher=teacher,
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def get_teacher(self, ref: str) -> augmentation_pb2.Teacher:
        return call(self._stub.GetTeacher, S.GetTeacherRequest(name=self.teacher_name(ref)))

    def teachers(self, *, page_size: int = 0) -> Iterator[augmentation_pb2.Teacher]:
        def fetch(token: str) -> tuple[list[augmentation_pb2.Teacher], str]:
            r = call(
                self._stub.ListTeachers,
                S.ListTeachersRequest(parent=self._parent, page_size=page_size, page_token=token),
            )
            return list(r.teachers), r.next_page_token

        return pages(fetch)

    def update_teacher(self, ref: str, **fields: Any) -> augmentation_pb2.Teacher:
        """Change fields by name (`api_key="..."` replaces the stored key; `deployment` or `base_url`)."""
        if fields.get("deployment"):
            fields["deployment"] = self._name("deployments", fields["deployment"])
        teacher = augmentation_pb2.Teacher(name=self.teacher_name(ref), **fields)
        return call(
            self._stub.UpdateTeacher,
            S.UpdateTeacherRequest(
                teacher=teacher, update_mask=field_mask_pb2.FieldMask(paths=sorted(fields))
            ),
        )

    def delete_teacher(self, ref: str) -> None:
        call(self._stub.DeleteTeacher, S.DeleteTeacherRequest(name=self.teacher_name(ref)))

    def templates(self, operation: str = "") -> list[augmentation_pb2.AugmentationTemplate]:
        """The default prompt templates (of one operation), with the fields each may use."""
        value = _choice(OPERATIONS, operation, "operation") if operation else 0
        return list(
            call(
                self._stub.ListAugmentationTemplates, S.ListAugmentationTemplatesRequest(operation=value)
            ).templates
        )

    # -- runs ----------------------------------------------------------------------------------

    def run_name(self, ref: str) -> str:
        return self._name("augmentationRuns", ref)

    def run(
        self,
        operation: str,
        source: str,
        *,
        into: str,
        teacher: str,
        judge: str = "",
        parameters: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
        templates: Mapping[str, str] | None = None,
        description: str = "",
        run_id: str = "",
        request_id: str | None = None,
    ) -> augmentation_pb2.AugmentationRun:
        """Start `operation` (answer, paraphrase, self_instruct, evol_instruct, preference_pairs,
        translate) over the dataset version `source`, making a new version of dataset `into`.
        `parameters` and `filters` take the fields of AugmentationParameters and AugmentationFilters
        (`output_kind` by name: `unpaired_preference`). It returns at once (PENDING): `wait` for it."""
        params = dict(parameters or {})
        if isinstance(params.get("output_kind"), str):
            params["output_kind"] = "DATASET_KIND_" + params["output_kind"].upper()
        run = augmentation_pb2.AugmentationRun(
            source=names.dataset_version(self._project, source),
            output_dataset=names.dataset(self._project, into),
            operation=_choice(OPERATIONS, operation, "operation"),
            teacher=self.teacher_name(teacher),
            judge=self.teacher_name(judge) if judge else "",
            templates=dict(templates or {}),
            description=description,
        )
        try:
            json_format.ParseDict(params, run.parameters)
            json_format.ParseDict(dict(filters or {}), run.filters)
        except json_format.ParseError as error:
            raise TuneForgeError("INVALID_ARGUMENT", str(error)) from None
        return call(
            self._stub.CreateAugmentationRun,
            S.CreateAugmentationRunRequest(
                parent=self._parent,
                augmentation_run_id=run_id,
                augmentation_run=run,
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def get(self, ref: str) -> augmentation_pb2.AugmentationRun:
        return call(self._stub.GetAugmentationRun, S.GetAugmentationRunRequest(name=self.run_name(ref)))

    def list(self, *, page_size: int = 0) -> Iterator[augmentation_pb2.AugmentationRun]:
        def fetch(token: str) -> tuple[list[augmentation_pb2.AugmentationRun], str]:
            r = call(
                self._stub.ListAugmentationRuns,
                S.ListAugmentationRunsRequest(parent=self._parent, page_size=page_size, page_token=token),
            )
            return list(r.augmentation_runs), r.next_page_token

        return pages(fetch)

    def watch(self, ref: str) -> Iterator[augmentation_pb2.AugmentationRun]:
        """The run now and at every change (progress included) until it ends."""
        stream = self._stub.WatchAugmentationRun(S.WatchAugmentationRunRequest(name=self.run_name(ref)))
        try:
            yield from stream
        except grpc.RpcError as error:
            raise TuneForgeError.from_rpc_error(error) from None
        finally:
            stream.cancel()

    def wait(self, ref: str, *, timeout: float = 3600) -> augmentation_pb2.AugmentationRun:
        """The run once it has ended (SUCCEEDED, FAILED or CANCELLED) and its version is made."""
        run = self._follow(
            self._stub.WatchAugmentationRun,
            S.WatchAugmentationRunRequest(name=self.run_name(ref)),
            lambda r: RUN_STATES[r.state] in RUN_FINAL,
            timeout,
            self.get(ref),
        )
        if run.output_version:
            self._version_made(run.output_version)
        return run

    def cancel(self, ref: str) -> augmentation_pb2.AugmentationRun:
        return call(self._stub.CancelAugmentationRun, S.CancelAugmentationRunRequest(name=self.run_name(ref)))


class Annotate(_Service):
    """Annotation tasks: a model pre-labels, people review, finishing writes a version."""

    def task_name(self, ref: str) -> str:
        return self._name("annotationTasks", ref)

    def item_name(self, task: str, position: int | str) -> str:
        return f"{self.task_name(task)}/items/{position}"

    def create(
        self,
        source: str,
        *,
        kind: str,
        teacher: str = "",
        labels: Sequence[str] = (),
        score_range: tuple[int, int] | None = None,
        instructions: str = "",
        template: str = "",
        max_rows: int = 0,
        task_id: str = "",
        request_id: str | None = None,
    ) -> augmentation_pb2.AnnotationTask:
        """A task over the dataset version `source`: `kind` score, label, correction or choice."""
        low, high = score_range or (0, 0)
        task = augmentation_pb2.AnnotationTask(
            source=names.dataset_version(self._project, source),
            kind=_choice(ANNOTATION_KINDS, kind, "kind"),
            teacher=self._name("teachers", teacher) if teacher else "",
            labels=list(labels),
            score_min=low,
            score_max=high,
            instructions=instructions,
            template=template,
            max_rows=max_rows,
        )
        return call(
            self._stub.CreateAnnotationTask,
            S.CreateAnnotationTaskRequest(
                parent=self._parent,
                annotation_task_id=task_id,
                annotation_task=task,
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def get(self, ref: str) -> augmentation_pb2.AnnotationTask:
        return call(self._stub.GetAnnotationTask, S.GetAnnotationTaskRequest(name=self.task_name(ref)))

    def list(self, *, page_size: int = 0) -> Iterator[augmentation_pb2.AnnotationTask]:
        def fetch(token: str) -> tuple[list[augmentation_pb2.AnnotationTask], str]:
            r = call(
                self._stub.ListAnnotationTasks,
                S.ListAnnotationTasksRequest(parent=self._parent, page_size=page_size, page_token=token),
            )
            return list(r.annotation_tasks), r.next_page_token

        return pages(fetch)

    def wait(self, ref: str, *, timeout: float = 3600) -> augmentation_pb2.AnnotationTask:
        """The task once pre-labelling is over (REVIEWING), or it ended."""
        return self._follow(
            self._stub.WatchAnnotationTask,
            S.WatchAnnotationTaskRequest(name=self.task_name(ref)),
            lambda t: TASK_STATES[t.state] in TASK_SETTLED,
            timeout,
            self.get(ref),
        )

    def cancel(self, ref: str) -> augmentation_pb2.AnnotationTask:
        return call(self._stub.CancelAnnotationTask, S.CancelAnnotationTaskRequest(name=self.task_name(ref)))

    def items(
        self, ref: str, *, status: str = "", annotator: str = "", model: str = "", page_size: int = 0
    ) -> Iterator[augmentation_pb2.AnnotationItem]:
        """Items in row order; `status` unreviewed/kept/rejected, `annotator` (items they reviewed),
        `model` failed/labelled."""
        terms = [
            f'{k} = "{v}"' for k, v in (("status", status), ("annotator", annotator), ("model", model)) if v
        ]

        def fetch(token: str) -> tuple[list[augmentation_pb2.AnnotationItem], str]:
            r = call(
                self._stub.ListAnnotationItems,
                S.ListAnnotationItemsRequest(
                    parent=self.task_name(ref),
                    page_size=page_size,
                    page_token=token,
                    filter=" AND ".join(terms),
                ),
            )
            return list(r.annotation_items), r.next_page_token

        return pages(fetch)

    def review(
        self,
        item: str,
        annotator: str,
        *,
        accept: bool = False,
        reject: bool = False,
        score: int | None = None,
        label: str | None = None,
        answer: str | None = None,
        choice: str | None = None,
    ) -> augmentation_pb2.AnnotationItem:
        """One annotator's decision: `accept=True`, `reject=True`, or an edit (`score=`, `label=`,
        `answer=` or `choice=`). `item` is an item's full name."""
        edits = {
            k: v
            for k, v in (("score", score), ("label", label), ("answer", answer), ("choice", choice))
            if v is not None
        }
        if accept + reject + bool(edits) != 1:
            raise TuneForgeError("INVALID_ARGUMENT", "give one of accept, reject, or one edited value")
        action = "accept" if accept else "reject" if reject else "edit"
        return call(
            self._stub.ReviewAnnotationItem,
            S.ReviewAnnotationItemRequest(
                name=item,
                annotator=annotator,
                action=ACTIONS[action],
                value=augmentation_pb2.AnnotationValue(**edits),
            ),
        )

    def finish(
        self,
        ref: str,
        *,
        into: str,
        include_unreviewed: bool = False,
        min_score: int = 0,
        keep_labels: Sequence[str] = (),
        request_id: str | None = None,
    ) -> augmentation_pb2.AnnotationTask:
        """Finish the task: a new version of dataset `into` holds the rows the reviews keep (returned
        once the version is made)."""
        task = call(
            self._stub.FinishAnnotationTask,
            S.FinishAnnotationTaskRequest(
                name=self.task_name(ref),
                output_dataset=names.dataset(self._project, into),
                include_unreviewed=include_unreviewed,
                min_score=min_score,
                keep_labels=list(keep_labels),
                request_id=request_id or str(uuid.uuid4()),
            ),
        )
        self._version_made(task.output_version)
        return task
