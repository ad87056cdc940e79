"""Training jobs on the control plane: validate, queue, report, cancel, watch.

Nothing here imports torch: the data and the model are checked with `tokenizers` and `pyarrow`
before a job may reach a worker, so an impossible job fails here with the field named.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.auth import bearer_var, parse_in_project, require_project
from services.kit.db import Database, keyset_page
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.kit.names import PROJECT, NamePattern, PageTokens, check_id, check_text, page_size, parse_filter
from services.kit.outbox import Outbox
from services.kit.store import ObjectStore
from services.kit.times import utcnow
from services.train.convert import (
    JOB,
    STATES,
    TERMINAL,
    checkpoint_to_proto,
    job_name,
    job_to_proto,
    metric_to_proto,
)
from services.train.repo import CheckpointRow, JobRow, MetricRow
from services.train.spec import METHOD_PARAMETERS, METHODS, JobSpec, spec_from_proto
from tuneforge.common.v1 import common_pb2
from tuneforge.events.v1 import train_events_pb2
from tuneforge.train.v1 import train_service_pb2, training_job_pb2

QUEUE_SUBJECT = "tuneforge.train-queue.{priority}"
MODEL = NamePattern("projects/{project}/models/{model}")
_MODEL_VERSION = re.compile(r"^projects/[^/]+/models/[^/]+/versions/[^/]+$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json")


@dataclass(frozen=True)
class Endpoints:
    registry: str
    data: str
    local_model_dirs: tuple[Path, ...] = ()
    spool_dir: str | None = None


def emit_job(
    outbox: Outbox, session: Session, row: JobRow, verb: str = "state_changed"
) -> training_job_pb2.TrainingJob:
    proto = job_to_proto(row)
    outbox.emit(
        session, "job", verb, proto.name, row.project, train_events_pb2.TrainingJobEvent(training_job=proto)
    )
    return proto


def _check_step(value: str, field: str) -> str:
    if not value.isdigit() or len(value) > 12:
        raise InvalidArgument.field(field, f"checkpoint {value!r} is not a step number")
    return value


CHECKPOINT = NamePattern("projects/{project}/trainingJobs/{job}/checkpoints/{step}", {"step": _check_step})
# Optimizer state and trainer bookkeeping stay with the checkpoint; a model version gets the model.
NOT_MODEL_FILES = {
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
    "trainer_state.json",
    "training_args.bin",
    "scaler.pt",
}


def lineage_of(row: JobRow) -> dict[str, Any]:
    """The lineage of the job's outputs. Incremental training names the parent version; an adapter
    trained on an adapter continues it, so its base stays the parent's own (full) base model."""
    spec = JobSpec.from_json(row.spec)
    data = spec.to_json()
    parent = spec.parent or {}
    lineage: dict[str, Any] = {
        "base_model": parent["base_model"] if parent.get("adapter") else spec.base_model,
        "source_job": job_name(row),
        # Replayed parent data is part of what the output learned from, at its effective rate.
        "dataset_versions": spec.training_data + parent.get("replayed", []),
        "hyperparameters": {
            "method": spec.method,
            "tuning": spec.tuning,
            **data["hyperparameters"],
            "lora": data["lora"],
            **(
                {
                    "method_parameters": {
                        k: v
                        for k, v in data["method_parameters"].items()
                        if k in METHOD_PARAMETERS[spec.method]
                    }
                }
                if spec.method in METHOD_PARAMETERS
                else {}
            ),
            **({"replay_share": spec.replay_share} if spec.replay_share else {}),
        },
    }
    if parent:
        lineage["parent_version"] = parent["version"]
    return lineage


def _token_lengths(tokenizer: Any, kind: str, row: dict[str, Any]) -> tuple[int, int]:
    """(whole sample, prompt) in tokens, roughly as the chat template lays them out."""

    def turns(messages: list[dict[str, Any]]) -> list[int]:
        return [len(tokenizer.encode(m["content"]).ids) + 4 for m in messages or []]

    if kind == "text":
        return len(tokenizer.encode(row["text"]).ids), 1
    if kind == "sft":
        lengths = turns(row["messages"])
        return sum(lengths), sum(lengths[:-1])
    prompt = sum(turns(row["prompt"]))
    if kind == "preference":
        return prompt + max(sum(turns(row["chosen"])), sum(turns(row["rejected"]))), prompt
    if kind == "unpaired_preference":
        return prompt + sum(turns(row["completion"])), prompt
    return prompt, prompt  # prompt_only: the completion is generated


def _check_references(spec: JobSpec, rows: list[dict[str, Any]], *, version_name: str, field: str) -> None:
    """Rewards that compare with the reference need one on every row."""
    needs = [
        r["type"]
        for r in spec.method_parameters.rewards
        if r["type"] == "exact_answer" or (r["type"] == "word_count" and not r["target_words"])
    ]
    if not needs:
        return
    missing = [r["id"] for r in rows if not (r.get("reference") or "").strip()]
    if missing:
        raise InvalidArgument.field(
            f"{field}.dataset_version",
            f"the {needs[0]} reward compares with each row's reference, but {len(missing)} rows of "
            f"{version_name} have none (first: {', '.join(missing[:3])})",
        )


def _check_reward_model(client: Any, project: str, spec: JobSpec, folder: Path, prefix: str) -> None:
    from tuneforge.errors import TuneForgeError

    field = f"{prefix}.method_parameters.reward_model"
    ref = spec.method_parameters.reward_model
    if not _MODEL_VERSION.match(ref) or ref.split("/")[1] != project:
        raise InvalidArgument.field(field, f"{ref!r} is not a model version of project {project}")
    try:
        version = client.models.get_version(ref)
    except TuneForgeError as error:
        raise InvalidArgument.field(field, error.message) from None
    files = {f.path for f in version.files}
    if "config.json" not in files or "tokenizer.json" not in files:
        raise InvalidArgument.field(
            field, f"{version.name} needs config.json and tokenizer.json (a full model)"
        )
    client.models.download(version.name, folder, paths=["config.json"])
    architectures = json.loads((folder / "config.json").read_text()).get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise InvalidArgument.field(
            field,
            f"{version.name} is a {', '.join(architectures) or 'model without architectures'}; a reward model has a sequence-classification head",
        )
    spec.method_parameters.reward_model = version.name


def report_inputs(session: Session, uid: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A job's metric points and kept checkpoints as the report module reads them."""
    points = [
        {
            "step": m.step,
            "loss": m.loss,
            "validation_loss": m.validation_loss if m.validation else None,
            "learning_rate": m.learning_rate,
            "method_metrics": m.extra or {},
            "sample_ids": m.sample_ids or [],
        }
        for m in session.scalars(select(MetricRow).where(MetricRow.job_uid == uid).order_by(MetricRow.step))
    ]
    checkpoints = [
        {"step": c.step, "validation_loss": c.validation_loss}
        for c in session.scalars(select(CheckpointRow).where(CheckpointRow.job_uid == uid))
    ]
    return points, checkpoints


async def assemble_report(db: Database, store: ObjectStore, row: JobRow) -> dict[str, Any]:
    """The report of a job from what is stored now: its points, kept checkpoints and mixture."""
    from services.train import report

    def load(session: Session) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        points, checkpoints = report_inputs(session, row.uid)
        return points, checkpoints, session.get(JobRow, row.uid).total_steps

    points, checkpoints, total_steps = await db.run(load)
    spec = JobSpec.from_json(row.spec)
    built = report.build(
        points,
        method=spec.method,
        epochs=spec.hyperparameters.epochs,
        total_steps=total_steps,
        checkpoints=checkpoints,
        job=job_name(row),
    )
    with contextlib.suppress(Exception):  # jobs that never reached a worker have no mixture
        built["mixture"] = json.loads(await store.get_bytes(f"jobs/{row.uid}/mixture.json"))
    return built


class TrainingJobs:
    def __init__(
        self, db: Database, outbox: Outbox, page_tokens: PageTokens, endpoints: Endpoints, store: ObjectStore
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.page_tokens = page_tokens
        self.endpoints = endpoints
        self.store = store

    # -- validation against the data and the model ---------------------------------------------

    def _check_against_world(self, project: str, spec: JobSpec) -> dict[str, Any]:
        """Fetch the base model's config and tokenizer and the datasets; check every field against
        them. Runs on a worker thread with the caller's own API key. Returns facts for the job row."""
        import pyarrow.parquet as pq
        from tokenizers import Tokenizer

        from tuneforge import Client
        from tuneforge.errors import TuneForgeError

        prefix = "training_job"
        with (
            tempfile.TemporaryDirectory(dir=self.endpoints.spool_dir) as tmp,
            Client(
                {"registry": self.endpoints.registry, "data": self.endpoints.data},
                api_key=bearer_var.get(),
                project=project,
            ) as client,
        ):
            model_dir = Path(tmp) / "model"
            if spec.base_model.startswith("local:///"):
                local = Path(spec.base_model.removeprefix("local://"))
                allowed = [
                    d for d in self.endpoints.local_model_dirs if local.resolve().is_relative_to(d.resolve())
                ]
                if not allowed:
                    raise InvalidArgument.field(
                        f"{prefix}.base_model",
                        f"{local} is not inside a folder the operator allowed (TUNEFORGE_TRAIN_LOCAL_MODEL_DIRS)",
                    )
                if not (local / "config.json").exists():
                    raise InvalidArgument.field(
                        f"{prefix}.base_model",
                        f"{local} holds no config.json: not a Hugging Face model folder",
                    )
                model_dir = local
            elif _MODEL_VERSION.match(spec.base_model):
                if spec.base_model.split("/")[1] != project:
                    raise InvalidArgument.field(
                        f"{prefix}.base_model", f"{spec.base_model} is in another project"
                    )
                try:
                    version = client.models.get_version(spec.base_model)
                except TuneForgeError as error:
                    raise InvalidArgument.field(f"{prefix}.base_model", error.message) from None
                files = {f.path for f in version.files}
                spec.base_model = version.name  # an alias resolves to the version it points at now
                spec.parent = None
                if version.lineage.source_job or "adapter_config.json" in files:
                    # Incremental training: the base is itself a fine-tuned version.
                    spec.parent = {
                        "version": version.name,
                        "adapter": "adapter_config.json" in files,
                        "base_model": version.lineage.base_model,
                        "datasets": [
                            {"dataset_version": d.dataset_version, "sampling_rate": d.sampling_rate}
                            for d in version.lineage.dataset_versions
                        ],
                        "method": json_format.MessageToDict(version.lineage.hyperparameters).get(
                            "method", ""
                        ),
                    }
                if "adapter_config.json" in files:
                    base_of_adapter = version.lineage.base_model
                    if not _MODEL_VERSION.match(base_of_adapter):
                        raise InvalidArgument.field(
                            f"{prefix}.base_model",
                            f"{version.name} is a LoRA adapter whose base model ({base_of_adapter or 'none'}) is not a registered version",
                        )
                    try:
                        base_version = client.models.get_version(base_of_adapter)
                    except TuneForgeError as error:
                        raise InvalidArgument.field(
                            f"{prefix}.base_model", f"the adapter's base model: {error.message}"
                        ) from None
                    version, files = base_version, {f.path for f in base_version.files}
                if "config.json" not in files:
                    raise InvalidArgument.field(
                        f"{prefix}.base_model", f"{version.name} holds no config.json: not a model"
                    )
                client.models.download(
                    version.name, model_dir, paths=[f for f in TOKENIZER_FILES if f in files]
                )
            else:
                raise InvalidArgument.field(
                    f"{prefix}.base_model",
                    f"{spec.base_model!r} is neither a model version name nor local:///path",
                )
            config = json.loads((model_dir / "config.json").read_text())
            model_limit = int(config.get("max_position_embeddings") or 1 << 20)
            if not (model_dir / "tokenizer.json").exists():
                raise InvalidArgument.field(
                    f"{prefix}.base_model", "the model has no tokenizer.json (a fast tokenizer is required)"
                )
            tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            kind = METHODS[spec.method]

            from tuneforge.api.datasets import KIND_NAMES

            def rows_of(ref: str, field: str) -> tuple[str, list[dict[str, Any]]]:
                try:
                    version = client.data.get_version(ref)
                except TuneForgeError as error:
                    raise InvalidArgument.field(field, error.message) from None

                if version.state != 1:
                    raise InvalidArgument.field(field, f"{version.name} failed validation and holds no data")
                if KIND_NAMES.get(version.kind) != kind:
                    raise InvalidArgument.field(
                        field,
                        f"{version.name} holds {KIND_NAMES.get(version.kind)} data; {spec.method} trains on {kind} data",
                    )
                target = Path(tmp) / uuid.uuid4().hex
                client.data.download(version.name, target)
                return version.name, pq.read_table(target / "data.parquet").to_pylist()

            sizes = []
            lengths: list[int] = []
            prompts: list[int] = []
            for i, ref in enumerate(spec.training_data):
                # `latest` resolves now: the job trains on exactly the versions it was validated with.
                ref["dataset_version"], rows = rows_of(
                    ref["dataset_version"], f"{prefix}.training_data[{i}].dataset_version"
                )
                sizes.append(round(len(rows) * ref["sampling_rate"]))
                for row in rows[:2000]:
                    total, prompt = _token_lengths(tokenizer, kind, row)
                    lengths.append(total)
                    prompts.append(prompt)
                if spec.method == "grpo":
                    _check_references(
                        spec, rows, version_name=ref["dataset_version"], field=f"{prefix}.training_data[{i}]"
                    )
            if spec.replay_share:
                field = f"{prefix}.replay_share"
                if not spec.parent:
                    raise InvalidArgument.field(
                        field,
                        "replay needs a base model that is a fine-tuned version (its training data is replayed)",
                    )
                if not spec.parent["datasets"]:
                    raise InvalidArgument.field(
                        field, f"{spec.parent['version']} has no training data in its lineage to replay"
                    )
                for ref in spec.parent["datasets"]:
                    # Checks that the parent's data still exists, is readable, and suits this method.
                    rows_of(ref["dataset_version"], field)
            if spec.method_parameters.reward_model:
                _check_reward_model(client, project, spec, Path(tmp) / "reward", prefix)
            if spec.validation_data:
                spec.validation_data = rows_of(spec.validation_data, f"{prefix}.validation_data")[0]
            if spec.auto_evaluation:
                field = f"{prefix}.auto_evaluation.dataset_version"
                try:
                    evaluation_set = client.data.get_version(spec.auto_evaluation["dataset_version"])
                except TuneForgeError as error:
                    raise InvalidArgument.field(field, error.message) from None
                if KIND_NAMES.get(evaluation_set.kind) not in ("eval", "sft") or evaluation_set.state != 1:
                    raise InvalidArgument.field(
                        field, f"{evaluation_set.name} is not a ready eval or sft dataset version"
                    )
                spec.auto_evaluation["dataset_version"] = evaluation_set.name
        hp = spec.hyperparameters
        if hp.max_sequence_length:
            if hp.max_sequence_length > model_limit:
                raise InvalidArgument.field(
                    f"{prefix}.hyperparameters.max_sequence_length",
                    f"{hp.max_sequence_length} is beyond the model's {model_limit} positions",
                )
            if prompts and hp.max_sequence_length <= min(prompts):
                raise InvalidArgument.field(
                    f"{prefix}.hyperparameters.max_sequence_length",
                    f"{hp.max_sequence_length} tokens leave no room for an answer: the shortest prompt is {min(prompts)} tokens",
                )
        train_rows = sum(sizes) * (1 - spec.validation_split)
        steps = math.ceil(
            math.ceil(train_rows / (hp.batch_size * hp.gradient_accumulation_steps)) * hp.epochs
        )
        if hp.checkpoint_interval_steps > steps:
            raise InvalidArgument.field(
                f"{prefix}.hyperparameters.checkpoint_interval_steps",
                f"{hp.checkpoint_interval_steps} is more than the {steps} steps this run will take: no checkpoint would be saved",
            )
        if hp.validation_interval_steps > steps:
            raise InvalidArgument.field(
                f"{prefix}.hyperparameters.validation_interval_steps",
                f"{hp.validation_interval_steps} is more than the {steps} steps this run will take",
            )
        limit = min(hp.max_sequence_length or model_limit, model_limit)
        return {"total_steps": steps, "overlength": sum(1 for n in lengths if n > limit)}

    # -- the API -------------------------------------------------------------------------------

    async def create(
        self, parent: str, job_id: str, job: training_job_pb2.TrainingJob, request_id: str
    ) -> training_job_pb2.TrainingJob:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        job_id = (
            check_id(job_id, "training_job_id", what="job id") if job_id else f"job-{uuid.uuid4().hex[:10]}"
        )
        check_text(request_id, "request_id", 128)
        check_text(job.display_name, "training_job.display_name", 200)
        spec = spec_from_proto(job)
        if spec.output_model:
            parts = MODEL.parse(spec.output_model, "training_job.output_model")
            if parts["project"] != project:
                raise InvalidArgument.field(
                    "training_job.output_model", "outputs are registered in the job's own project"
                )
        else:
            spec.output_model = MODEL.format(project=project, model=job_id)
        if request_id:
            existing = await self.db.run(
                lambda s: s.scalar(
                    select(JobRow).where(JobRow.project == project, JobRow.request_id == request_id)
                )
            )
            if existing is not None:
                return job_to_proto(existing)
        facts = await asyncio.to_thread(self._check_against_world, project, spec)

        def insert(session: Session) -> training_job_pb2.TrainingJob:
            if session.scalar(select(JobRow.uid).where(JobRow.project == project, JobRow.job_id == job_id)):
                raise AlreadyExists(f"training job projects/{project}/trainingJobs/{job_id} already exists")
            now = utcnow()
            row = JobRow(
                uid=uuid.uuid4().hex,
                project=project,
                job_id=job_id,
                display_name=job.display_name or job_id,
                state="queued",
                method=spec.method,
                spec=spec.to_json(),
                total_steps=facts["total_steps"],
                overlength_samples=facts["overlength"],
                metrics={},
                attempt=0,
                priority=spec.priority,
                preemptions=0,
                cancel_requested=False,
                request_id=request_id or None,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            proto = emit_job(self.outbox, session, row, "created")
            self.outbox.enqueue(
                session, QUEUE_SUBJECT.format(priority=spec.priority), row.uid.encode(), f"queue-{row.uid}"
            )
            return proto

        try:
            return await self.outbox.write(self.db, insert)
        except IntegrityError:
            existing = await self.db.run(
                lambda s: s.scalar(
                    select(JobRow).where(JobRow.project == project, JobRow.request_id == request_id)
                )
            )
            if existing is None:
                raise
            return job_to_proto(existing)

    def _find(self, session: Session, name: str, field: str = "name") -> JobRow:
        parts = parse_in_project(JOB, name, field)
        row = session.scalar(
            select(JobRow).where(JobRow.project == parts["project"], JobRow.job_id == parts["job"])
        )
        if row is None:
            raise NotFound(f"training job {name} does not exist")
        return row

    async def get(self, name: str) -> training_job_pb2.TrainingJob:
        return await self.db.run(lambda s: job_to_proto(self._find(s, name)))

    async def list(
        self, parent: str, size: int, token: str, filter_text: str
    ) -> tuple[list[training_job_pb2.TrainingJob], str]:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        size = page_size(size)
        terms = parse_filter(filter_text, lambda k: k in ("state", "method"))

        def list_(session: Session) -> tuple[list[training_job_pb2.TrainingJob], str]:
            query = select(JobRow).where(JobRow.project == project)
            for key, value in terms:
                if key == "state":
                    if value.lower() not in STATES:
                        raise InvalidArgument.field("filter", f"state is one of {', '.join(STATES)}")
                    query = query.where(JobRow.state == value.lower())
                else:
                    query = query.where(JobRow.method == value)
            rows, next_token = keyset_page(
                session,
                query,
                tokens=self.page_tokens,
                columns={"create_time": JobRow.create_time},
                order_by="create_time desc",
                default_order="create_time",
                tie=JobRow.uid,
                size=size,
                token=token,
                context=f"ListTrainingJobs|{project}|{filter_text}",
            )
            return [job_to_proto(r) for r in rows], next_token

        return await self.db.run(list_)

    async def cancel(self, name: str) -> training_job_pb2.TrainingJob:
        def cancel_(session: Session) -> training_job_pb2.TrainingJob:
            row = self._find(session, name)
            if row.state in TERMINAL:
                raise FailedPrecondition(f"{name} is already {row.state}", reason="JOB_FINISHED")
            row.cancel_requested = True
            row.update_time = utcnow()
            if row.state in ("queued", "preempted"):
                row.state = "cancelled"
                row.end_time = utcnow()
                return emit_job(self.outbox, session, row)
            return job_to_proto(row)  # the worker stops the child and records CANCELLED

        return await self.outbox.write(self.db, cancel_)

    async def checkpoints(self, parent: str) -> list[training_job_pb2.Checkpoint]:
        def list_(session: Session) -> list[training_job_pb2.Checkpoint]:
            row = self._find(session, parent, "parent")
            rows = session.scalars(
                select(CheckpointRow).where(CheckpointRow.job_uid == row.uid).order_by(CheckpointRow.step)
            )
            return [checkpoint_to_proto(c, job_name(row)) for c in rows]

        return await self.db.run(list_)

    async def _metric_rows(
        self, parent: str, after_step: int, after_id: int
    ) -> list[tuple[int, training_job_pb2.MetricPoint]]:
        def list_(session: Session) -> list[tuple[int, training_job_pb2.MetricPoint]]:
            row = self._find(session, parent, "parent")
            rows = session.scalars(
                select(MetricRow)
                .where(MetricRow.job_uid == row.uid, MetricRow.step > after_step, MetricRow.id > after_id)
                .order_by(MetricRow.id)
            )
            return [(m.id, metric_to_proto(m)) for m in rows]

        return await self.db.run(list_)

    async def metrics(self, parent: str) -> list[training_job_pb2.MetricPoint]:
        return sorted(
            (p for _, p in await self._metric_rows(parent, -1, 0)),
            key=lambda p: (p.step, p.has_validation_loss),
        )

    async def watch(
        self, name: str, after_step: int
    ) -> AsyncIterator[train_service_pb2.WatchTrainingJobResponse]:
        """What was recorded after `after_step`, then changes as they happen, until the job ends."""
        cursor = 0
        last_seen: tuple[Any, ...] | None = None
        while True:
            job = await self.get(name)
            for row_id, point in await self._metric_rows(name, after_step, cursor):
                cursor = row_id
                yield train_service_pb2.WatchTrainingJobResponse(metric_point=point)
            key = (job.state, job.current_step, job.total_steps, job.final_model_version, job.error.reason)
            if key != last_seen:
                last_seen = key
                yield train_service_pb2.WatchTrainingJobResponse(training_job=job)
            if job.state in (STATES["succeeded"], STATES["failed"], STATES["cancelled"]):
                for _, point in await self._metric_rows(name, after_step, cursor):
                    yield train_service_pb2.WatchTrainingJobResponse(metric_point=point)
                return
            await asyncio.sleep(0.5)

    async def report(self, name: str) -> training_job_pb2.TrainingReport:
        """The stored report of a finished job, or one computed now from the metric history."""

        row = await self.db.run(lambda s: self._find(s, name))
        prefix = f"jobs/{row.uid}/report/"
        stored = row.state in TERMINAL and await self.store.exists(prefix + "report.json")
        if stored:
            built = json.loads(await self.store.get_bytes(prefix + "report.json"))
        else:
            built = await assemble_report(self.db, self.store, row)
            built["charts"] = []
        diagnosis = built["diagnosis"]
        return training_job_pb2.TrainingReport(
            training_job=job_name(row),
            diagnosis=training_job_pb2.Diagnosis(
                verdict=diagnosis["verdict"],
                summary=diagnosis["summary"],
                advice=diagnosis["advice"],
                suggested_epochs=diagnosis["suggested_epochs"],
                best_checkpoint=diagnosis["best_checkpoint"],
                best_step=diagnosis["best_step"],
                spikes=[training_job_pb2.LossSpike(**spike) for spike in diagnosis["spikes"]],
                flags=diagnosis["flags"],
            ),
            report=json_format.ParseDict(built, struct_pb2.Struct()),
            charts=[
                common_pb2.PresignedUrl(
                    path=chart, url=self.store.presigned_get(prefix + chart, timedelta(hours=1)), method="GET"
                )
                for chart in built["charts"]
            ],
            final=stored,
        )

    async def register_checkpoint(self, name: str, request_id: str) -> str:
        """Register a kept checkpoint's model files as a version of the job's output model."""
        parts = parse_in_project(CHECKPOINT, name, "name")
        check_text(request_id, "request_id", 128)

        def load(session: Session) -> tuple[JobRow, CheckpointRow]:
            job = self._find(session, JOB.format(project=parts["project"], job=parts["job"]))
            checkpoint = session.get(CheckpointRow, (job.uid, int(parts["step"])))
            if checkpoint is None:
                raise NotFound(f"{name} is not a kept checkpoint; `ListCheckpoints` shows them")
            return job, checkpoint

        job, checkpoint = await self.db.run(load)
        from tuneforge import Client
        from tuneforge.errors import AlreadyExistsError

        with tempfile.TemporaryDirectory(dir=self.endpoints.spool_dir) as tmp:
            folder = Path(tmp)
            for entry in checkpoint.files:
                if Path(entry["path"]).name in NOT_MODEL_FILES:
                    continue
                target = folder / entry["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                await self.store.get_file(
                    checkpoint.storage_prefix + entry["path"],
                    target,
                    sha256=entry["sha256"],
                    size_bytes=entry["size_bytes"],
                    label=entry["path"],
                )
            spec = JobSpec.from_json(job.spec)
            metrics = {
                "step": float(checkpoint.step),
                **(
                    {"validation_loss": checkpoint.validation_loss}
                    if checkpoint.validation_loss is not None
                    else {}
                ),
            }

            def register() -> str:
                with Client(
                    {"registry": self.endpoints.registry}, api_key=bearer_var.get(), project=job.project
                ) as client:
                    model_id = spec.output_model.rsplit("/", 1)[-1]
                    with contextlib.suppress(AlreadyExistsError):
                        client.models.create(
                            model_id, tags={"source_job": job.job_id}, request_id=f"{job.uid}-model"
                        )
                    version = client.models.upload(
                        model_id,
                        folder,
                        description=f"checkpoint at step {checkpoint.step} of {job_name(job)}",
                        tags={"checkpoint_step": str(checkpoint.step)},
                        metrics=metrics,
                        lineage=lineage_of(job),
                        request_id=request_id or f"{job.uid}-checkpoint-{checkpoint.step}",
                    )
                    return version.name

            return await asyncio.to_thread(register)
