"""Augmentation runs (数据增强), the resource: every setting checked at creation (the source, the
output dataset's kind, the teacher and judge, parameters, filters, and templates against the source
rows), then handed to a data worker (`augment_runs.py`); read, listed, watched and cancelled here.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.data import augment_templates as templates
from services.data.augment_convert import (
    OPERATION_FROM_PROTO,
    RUN,
    emit_run,
    run_to_proto,
    teacher_name,
)
from services.data.augment_filters import check_filters
from services.data.augment_ops import OPERATIONS, SOURCE_KINDS, TEMPLATES, Parameters, output_kind
from services.data.catalog import DataCatalog
from services.data.convert import DATASET, KIND_FROM_PROTO, version_name
from services.data.datasets import Datasets
from services.data.repo import AugmentationRunRow, DatasetRow
from services.data.teachers import Teachers
from services.kit.auth import parse_in_project, require_project
from services.kit.errors import AlreadyExists, FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.kit.names import PROJECT, check_id, check_text, quote
from services.kit.rows import Kind
from services.kit.times import utcnow
from services.kit.watch import changes
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import augmentation_pb2

ENDED = ("succeeded", "failed", "cancelled")
ZERO_PROGRESS = {
    "rows_total": 0,
    "rows_done": 0,
    "rows_failed": 0,
    "calls": 0,
    "cached_calls": 0,
    "retries": 0,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "cost_estimate": 0.0,
    "generated_rows": 0,
    "kept_rows": 0,
    "dropped_by_reason": {},
}


def _in(value: float, low: float, high: float) -> bool:
    return math.isfinite(value) and low <= value <= high


class _Problems:
    """Field violations of `augmentation_run.parameters`, collected before one error is raised."""

    def __init__(self) -> None:
        self.found: list[FieldViolation] = []

    def bad(self, name: str, message: str) -> None:
        self.found.append(FieldViolation(f"augmentation_run.parameters.{name}", message))

    def within(self, name: str, value: float, low: float, high: float, given: float | None = None) -> float:
        if not _in(value, low, high):
            self.bad(name, f"must be between {low:g} and {high:g} (got {value if given is None else given})")
        return value


def _check_kinds(
    problems: _Problems, operation: str, p: augmentation_pb2.AugmentationParameters, source: Kind
) -> tuple[bool, Kind]:
    """Whether new prompts are answered, and the output kind, with the rules that tie them."""
    answer = p.answer if p.HasField("answer") else True
    requested = KIND_FROM_PROTO.get(p.output_kind) if p.output_kind else None
    if p.output_kind and requested is None:
        problems.bad("output_kind", f"{p.output_kind} is not a dataset kind this server knows")
    if operation == "preference_pairs":
        if requested not in (None, Kind.PREFERENCE, Kind.UNPAIRED_PREFERENCE):
            problems.bad(
                "output_kind", "preference_pairs makes `preference` (DPO) or `unpaired_preference` (KTO) rows"
            )
    elif requested is not None:
        problems.bad("output_kind", "only preference_pairs takes an output kind")
    out = output_kind(operation, source, answer, requested)
    if p.regenerate_answers and not (operation == "paraphrase" and source == Kind.SFT):
        problems.bad("regenerate_answers", "only paraphrase of sft rows regenerates answers")
    if p.include_source and (
        operation not in ("paraphrase", "self_instruct", "evol_instruct") or out != source
    ):
        problems.bad(
            "include_source",
            f"the source rows ({source.value}) can join only output of their own kind ({out.value}) "
            "from paraphrase, self_instruct or evol_instruct",
        )
    if operation == "translate" and p.target_language not in templates.LANGUAGES:
        problems.bad("target_language", f"translate needs `zh` or `en` (got {quote(p.target_language)})")
    return answer, out


def check_parameters(
    operation: str, p: augmentation_pb2.AugmentationParameters, source: Kind, rows: int
) -> Parameters:
    """The operation's parameters with their defaults, every problem named by its field."""
    problems = _Problems()
    pairs = operation == "preference_pairs"
    samples = int(
        problems.within("samples", p.samples or (4 if pairs else 2), 2 if pairs else 1, 16, p.samples)
    )
    count = int(problems.within("count", p.count or rows, 1, 100_000, p.count))
    rounds = int(problems.within("rounds", p.rounds or 1, 1, 5, p.rounds))
    answer, out = _check_kinds(problems, operation, p, source)
    margin = problems.within(
        "min_score_margin", p.min_score_margin if p.HasField("min_score_margin") else 1.0, 0, 9
    )
    desirable = problems.within(
        "desirable_score", p.desirable_score if p.HasField("desirable_score") else 6.0, 1, 10
    )
    examples = int(
        problems.within("examples_per_prompt", p.examples_per_prompt or 3, 1, 8, p.examples_per_prompt)
    )
    temperature = problems.within("temperature", p.temperature if p.HasField("temperature") else 0.7, 0, 2)
    if pairs and temperature == 0:
        problems.bad(
            "temperature", "preference_pairs samples several answers: greedy decoding (0) gives one answer"
        )
    top_p = problems.within("top_p", p.top_p if p.HasField("top_p") else 1.0, 1e-6, 1)
    # max_tokens 0: the teacher's own default.
    max_tokens = int(problems.within("max_tokens", p.max_tokens, 0, 32_768))
    problems.within("max_rows", p.max_rows, 0, 10**9)
    problems.within("seed", p.seed, 0, 2**32 - 1)
    if problems.found:
        raise InvalidArgument.fields(problems.found)
    return Parameters(
        samples=samples,
        count=count,
        rounds=rounds,
        regenerate_answers=p.regenerate_answers,
        answer=answer,
        include_source=p.include_source,
        target_language=p.target_language,
        output_kind=out,
        min_score_margin=margin,
        desirable_score=desirable,
        examples_per_prompt=examples,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=p.seed,
        max_rows=p.max_rows,
    )


@dataclass(frozen=True)
class _Planned:
    """A run's checked settings, before it is stored."""

    operation: str
    output_dataset: str
    source: Any
    teacher_uid: str
    judge_uid: str
    output_kind: Kind
    spec: dict[str, Any]
    units: int


class Augmentations:
    def __init__(self, catalog: DataCatalog, datasets: Datasets, teachers: Teachers) -> None:
        self.catalog = catalog
        self.datasets = datasets
        self.teachers = teachers

    async def create(
        self, parent: str, run_id: str, run: augmentation_pb2.AugmentationRun, request_id: str
    ) -> augmentation_pb2.AugmentationRun:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        run_id = check_id(run_id, "augmentation_run_id", what="run id") if run_id else ""
        check_text(request_id, "request_id", 128)
        check_text(run.description, "augmentation_run.description", 4000)
        if request_id:
            found = await self.catalog.db.run(lambda s: self._by_request(s, project, request_id))
            if found is not None:
                return found
        planned = await self._plan(project, run)
        try:
            return await self.catalog.outbox.write(
                self.catalog.db, lambda s: self._insert(s, project, run_id, run, planned, request_id)
            )
        except IntegrityError:
            found = await self.catalog.db.run(lambda s: self._by_request(s, project, request_id))
            if found is None:
                raise
            return found

    async def _plan(self, project: str, run: augmentation_pb2.AugmentationRun) -> _Planned:
        """Every check that needs no write: the operation, source, teachers, parameters, filters,
        and the templates against the rows the run will read."""
        operation = OPERATION_FROM_PROTO.get(run.operation)
        if operation not in OPERATIONS:
            raise InvalidArgument.field(
                "augmentation_run.operation", f"choose an operation: {', '.join(OPERATIONS)}"
            )
        output = parse_in_project(DATASET, run.output_dataset, "augmentation_run.output_dataset")
        if output["project"] != project:
            raise InvalidArgument.field("augmentation_run.output_dataset", f"is not in project {project}")

        def resolve(session: Session) -> tuple[Any, Any, Any]:
            source = self.catalog.version_row(session, run.source, "augmentation_run.source", ready=True)
            if source.dataset.project != project:
                raise InvalidArgument.field("augmentation_run.source", f"is not in project {project}")
            teacher = self.teachers.find(session, run.teacher, "augmentation_run.teacher")
            judge = self.teachers.find(session, run.judge, "augmentation_run.judge") if run.judge else teacher
            session.expunge_all()
            return source, teacher, judge

        source, teacher, judge = await self.catalog.db.run(resolve)
        kind = Kind(source.kind)
        if kind not in SOURCE_KINDS[operation]:
            raise InvalidArgument.field(
                "augmentation_run.source",
                f"{operation} reads {', '.join(k.value for k in SOURCE_KINDS[operation])} rows; "
                f"{version_name(source)} holds {kind.value} rows",
            )
        rows = await self.catalog.load_rows(source)
        params = check_parameters(operation, run.parameters, kind, len(rows))
        filter_values = json_format.MessageToDict(run.filters, preserving_proto_field_name=True)
        filters = check_filters(filter_values, "augmentation_run.filters")
        used = list(TEMPLATES[operation])
        if filters.judge_min_score is not None and "judge" not in used:
            used.append("judge")
        used_rows = rows[: params.max_rows] if params.max_rows else rows
        try:
            effective = templates.check(dict(run.templates), used, used_rows, kind)
        except templates.TemplateError as error:
            raise InvalidArgument.field(f"augmentation_run.templates[{error.template}]", str(error)) from None
        spec = {
            "teacher": teacher_name(teacher),
            "judge": teacher_name(judge),
            "templates": effective,
            "parameters": params.as_dict(),
            "filters": filters.as_dict(),
            "source_kind": kind.value,
        }
        units = params.count if operation == "self_instruct" else len(used_rows)
        return _Planned(
            operation, output["dataset"], source, teacher.uid, judge.uid, params.output_kind, spec, units
        )

    def _insert(
        self,
        session: Session,
        project: str,
        run_id: str,
        run: augmentation_pb2.AugmentationRun,
        planned: _Planned,
        request_id: str,
    ) -> augmentation_pb2.AugmentationRun:
        """The run (PENDING) and its queue message, with the output dataset made if missing."""
        out_kind = planned.output_kind
        output = session.scalar(
            select(DatasetRow).where(
                DatasetRow.project == project, DatasetRow.dataset_id == planned.output_dataset
            )
        )
        if output is None:
            output = self.datasets.insert_dataset(
                session, project, planned.output_dataset, out_kind, "", "", {}, ""
            )
        elif output.kind != out_kind.value:
            raise InvalidArgument.field(
                "augmentation_run.output_dataset",
                f"{run.output_dataset} holds {output.kind} rows; {planned.operation} makes "
                f"{out_kind.value} rows: name another dataset (it is made if missing)",
            )
        uid, now = uuid.uuid4().hex, utcnow()
        chosen_id = run_id or f"run-{uid[:12]}"
        if session.scalar(
            select(AugmentationRunRow.uid).where(
                AugmentationRunRow.project == project, AugmentationRunRow.run_id == chosen_id
            )
        ):
            raise AlreadyExists(f"{RUN.format(project=project, run=chosen_id)} already exists")
        row = AugmentationRunRow(
            uid=uid,
            project=project,
            run_id=chosen_id,
            source_uid=planned.source.uid,
            source=version_name(planned.source),
            output_dataset_uid=output.uid,
            output_dataset=run.output_dataset,
            operation=planned.operation,
            teacher_uid=planned.teacher_uid,
            judge_uid=planned.judge_uid,
            spec=planned.spec,
            state="pending",
            cancel_requested=False,
            progress={**ZERO_PROGRESS, "rows_total": planned.units},
            errors_by_reason={},
            error_examples=[],
            output_version_uid="",
            output_version="",
            rejects={},
            storage_prefix=f"augmentations/{uid}/",
            description=run.description,
            failure_reason="",
            failure_message="",
            request_id=request_id or None,
            create_time=now,
            update_time=now,
        )
        session.add(row)
        session.flush()
        self.catalog.enqueue(session, "augmentation", uid)
        return emit_run(self.catalog.outbox, session, row, "created")

    @staticmethod
    def _by_request(
        session: Session, project: str, request_id: str
    ) -> augmentation_pb2.AugmentationRun | None:
        row = session.scalar(
            select(AugmentationRunRow).where(
                AugmentationRunRow.project == project, AugmentationRunRow.request_id == request_id
            )
        )
        return run_to_proto(row) if row else None

    @staticmethod
    def find(session: Session, name: str, *, lock: bool = False) -> AugmentationRunRow:
        parts = parse_in_project(RUN, name, "name")
        query = select(AugmentationRunRow).where(
            AugmentationRunRow.project == parts["project"], AugmentationRunRow.run_id == parts["run"]
        )
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise NotFound(f"augmentation run {name} does not exist")
        return row

    async def get(self, name: str) -> augmentation_pb2.AugmentationRun:
        row = await self.catalog.db.run(lambda s: self.find(s, name))
        url = None
        if row.rejects:
            url = common_pb2.PresignedUrl(
                path="rejects.jsonl",
                url=self.catalog.store.presigned_get(
                    row.storage_prefix + "rejects.jsonl", self.catalog.limits.url_ttl
                ),
                method="GET",
                sha256=row.rejects["sha256"],
                size_bytes=row.rejects["size_bytes"],
            )
        return run_to_proto(row, url)

    async def list(
        self, parent: str, size: int, token: str
    ) -> tuple[list[augmentation_pb2.AugmentationRun], str]:
        return await self.catalog.list_newest(
            parent, size, token, AugmentationRunRow, "ListAugmentationRuns", run_to_proto
        )

    async def watch(self, name: str) -> AsyncIterator[augmentation_pb2.AugmentationRun]:
        await self.catalog.db.run(lambda s: self.find(s, name))  # refused now if it is not there
        assert self.catalog.feed is not None
        async for run in changes(
            self.catalog.feed,
            name,
            lambda: self.get(name),
            lambda r: (
                r.state
                in (
                    augmentation_pb2.AUGMENTATION_STATE_SUCCEEDED,
                    augmentation_pb2.AUGMENTATION_STATE_FAILED,
                    augmentation_pb2.AUGMENTATION_STATE_CANCELLED,
                )
            ),
        ):
            yield run

    async def cancel(self, name: str) -> augmentation_pb2.AugmentationRun:
        """A PENDING run ends CANCELLED at once; a RUNNING one is asked to stop (its worker keeps
        what is done); an ended run is refused."""

        def cancel_(session: Session) -> augmentation_pb2.AugmentationRun:
            row = self.find(session, name, lock=True)
            if row.state in ENDED:
                raise FailedPrecondition(f"{name} has already ended ({row.state})", reason="RUN_ENDED")
            row.update_time = utcnow()
            if row.state == "pending":
                row.state = "cancelled"
                session.flush()
                return emit_run(self.catalog.outbox, session, row, "cancelled")
            row.cancel_requested = True
            session.flush()
            return emit_run(self.catalog.outbox, session, row, "cancelling")

        return await self.catalog.outbox.write(self.catalog.db, cancel_)
