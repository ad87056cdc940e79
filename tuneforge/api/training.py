"""`client.train`: training jobs."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from tuneforge import names
from tuneforge.api._calls import call, follow_until, pages, save_report
from tuneforge.common.v1 import common_pb2
from tuneforge.enums import enum_names, enum_values
from tuneforge.errors import TuneForgeError
from tuneforge.train.v1 import train_service_pb2, train_service_pb2_grpc, training_job_pb2

STATE_NAMES = {0: "unspecified", **enum_names(training_job_pb2.TrainingJobState, "TRAINING_JOB_STATE_")}
METHODS = enum_values(training_job_pb2.TrainingMethod, "TRAINING_METHOD_")
TUNINGS = enum_values(training_job_pb2.TuningMode, "TUNING_MODE_")
PRIORITIES = enum_values(training_job_pb2.JobPriority, "JOB_PRIORITY_")
TERMINAL = {"succeeded", "failed", "cancelled"}


class Training:
    """The train service."""

    def __init__(self, connect: Callable[[], grpc.Channel], project: str) -> None:
        """`connect()` gives the service's channel, made on first use: a client that never calls
        this service needs no endpoint for it."""
        self._connect = connect
        self._project = project

    @functools.cached_property
    def _stub(self) -> train_service_pb2_grpc.TrainServiceStub:
        return train_service_pb2_grpc.TrainServiceStub(self._connect())

    def job_name(self, ref: str) -> str:
        return names.training_job(self._project, ref)

    def create(
        self,
        *,
        base_model: str,
        training_data: Mapping[str, float],
        method: str = "sft",
        tuning: str = "lora",
        job_id: str = "",
        display_name: str = "",
        validation_data: str = "",
        validation_split: float = 0.0,
        output_model: str = "",
        hyperparameters: Mapping[str, Any] | None = None,
        lora: Mapping[str, Any] | None = None,
        evaluate_on: str = "",
        evaluation_metrics: Sequence[str] = (),
        method_parameters: Mapping[str, Any] | None = None,
        priority: str = "",
        replay_share: float = 0.0,
        check_only: bool = False,
        resources: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> training_job_pb2.TrainingJob:
        """Queue a job (with `check_only`, only its pre-flight check: see `check`). `base_model` is a model version (`m/3`, `m@production`, full name) or `local:///path`;
        `training_data` maps dataset versions (`essays/2`, `essays`) to sampling rates.
        `method_parameters`: DPO/ORPO/KTO `beta`, KTO `desirable_weight`/`undesirable_weight`, GRPO
        `num_generations`, `max_completion_length`, `temperature`, `rewards` (list of
        `{"type": "regex"|"exact_answer"|"word_count"|"json_fields", ...}`) and `reward_model`.
        `priority="idle"` runs the job on spare capacity (preemptible); `replay_share` mixes in that
        share of the parent's training data when `base_model` is a fine-tuned version.
        `resources`: `accelerators_per_node`, `nodes`, `accelerator_kind`, `accelerator_memory_bytes`
        (the processes share `batch_size`; see the README's "Training on several devices")."""
        job = training_job_pb2.TrainingJob(
            display_name=display_name,
            base_model=names.base_model(self._project, base_model),
            training_data=[
                common_pb2.DatasetVersionRef(
                    dataset_version=names.dataset_version(self._project, ref), sampling_rate=rate
                )
                for ref, rate in training_data.items()
            ],
            validation_data=names.dataset_version(self._project, validation_data) if validation_data else "",
            validation_split=validation_split,
            output_model=names.model(self._project, output_model) if output_model else "",
            replay_share=replay_share,
            check_only=check_only,
        )
        # Known names go as the enums; anything else in the deprecated string fields, so that the
        # service names the bad field in its answer.
        for value, table, enum_field, legacy_field in (
            (method, METHODS, "training_method", "method"),
            (tuning, TUNINGS, "tuning_mode", "tuning"),
            (priority, PRIORITIES, "job_priority", "priority"),
        ):
            if value in table:
                setattr(job, enum_field, table[value])
            elif value:
                setattr(job, legacy_field, value)
        if method_parameters:
            parameters = dict(method_parameters)
            if parameters.get("reward_model"):
                parameters["reward_model"] = names.model_version(self._project, parameters["reward_model"])
            json_format.ParseDict(parameters, job.method_parameters)
        if hyperparameters:
            json_format.ParseDict(dict(hyperparameters), job.hyperparameters)
        for given, message in ((lora, job.lora), (resources, job.resources)):
            if given:
                json_format.ParseDict(dict(given), message)
        if evaluate_on:  # evaluated against the base model once the final model is registered
            job.auto_evaluation.dataset_version = names.dataset_version(self._project, evaluate_on)
            job.auto_evaluation.metrics.extend(evaluation_metrics)
        return call(
            self._stub.CreateTrainingJob,
            train_service_pb2.CreateTrainingJobRequest(
                parent=f"projects/{self._project}",
                training_job_id=job_id,
                training_job=job,
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def check(self, *, timeout: float = 600, **job: Any) -> training_job_pb2.TrainingJob:
        """Run the pre-flight check of the job `create(**job)` would queue, on a worker, and wait:
        the job succeeds with `preflight_*` metrics (memory estimate, device memory, rows checked)
        or fails with PREFLIGHT_FAILED naming each finding. Nothing trains or registers."""
        created = self.create(**job, check_only=True)
        return self.wait(created.name, timeout=timeout)

    def create_openai(
        self, request: Mapping[str, Any], *, tuning: str = "lora", request_id: str | None = None
    ) -> training_job_pb2.TrainingJob:
        """Queue a job from OpenAI's fine-tuning request (`model`, `training_file`, `method` with
        `supervised`/`dpo`/`reinforcement` and their hyperparameters, `"auto"` included): see
        `tuneforge.api.openai_jobs`. What has no counterpart here is named in a warning."""
        import warnings

        from tuneforge.api.openai_jobs import openai_job

        kwargs, notes = openai_job(request)
        for note in notes:
            warnings.warn(note, stacklevel=2)
        return self.create(**kwargs, tuning=tuning, request_id=request_id)

    def get(self, ref: str) -> training_job_pb2.TrainingJob:
        return call(
            self._stub.GetTrainingJob, train_service_pb2.GetTrainingJobRequest(name=self.job_name(ref))
        )

    def list(self, *, filter: str = "", page_size: int = 0) -> Iterator[training_job_pb2.TrainingJob]:
        def fetch(token: str) -> tuple[list[training_job_pb2.TrainingJob], str]:
            response = call(
                self._stub.ListTrainingJobs,
                train_service_pb2.ListTrainingJobsRequest(
                    parent=f"projects/{self._project}",
                    page_size=page_size,
                    page_token=token,
                    filter=filter,
                ),
            )
            return list(response.training_jobs), response.next_page_token

        return pages(fetch)

    def workers(self, *, include_lost: bool = False) -> list[train_service_pb2.Worker]:
        """The training workers with a recent heartbeat: devices, memory, backends, busy or not."""
        return list(
            call(
                self._stub.ListWorkers, train_service_pb2.ListWorkersRequest(include_lost=include_lost)
            ).workers
        )

    def cancel(self, ref: str) -> training_job_pb2.TrainingJob:
        return call(
            self._stub.CancelTrainingJob, train_service_pb2.CancelTrainingJobRequest(name=self.job_name(ref))
        )

    def watch(
        self, ref: str, *, after_step: int = 0
    ) -> Iterator[training_job_pb2.TrainingJob | training_job_pb2.MetricPoint]:
        """Job updates and metric points as they happen, until the job ends (recorded ones first)."""
        stream = self._stub.WatchTrainingJob(
            train_service_pb2.WatchTrainingJobRequest(name=self.job_name(ref), after_step=after_step)
        )
        try:
            for update in stream:
                yield update.training_job if update.HasField("training_job") else update.metric_point
        except Exception as error:
            import grpc

            if isinstance(error, grpc.RpcError):
                raise TuneForgeError.from_rpc_error(error) from None
            raise

    def wait(self, ref: str, *, timeout: float = 3600) -> training_job_pb2.TrainingJob:
        """Block until the job ends (through the watch stream, not by polling; TimeoutError after
        `timeout` seconds)."""
        request = train_service_pb2.WatchTrainingJobRequest(name=self.job_name(ref), after_step=2**31 - 1)

        def jobs(left: float) -> Iterator[training_job_pb2.TrainingJob]:
            for update in self._stub.WatchTrainingJob(request, timeout=left):
                if update.HasField("training_job"):
                    yield update.training_job

        return follow_until(jobs, lambda j: STATE_NAMES[j.state] in TERMINAL, self.get(ref), timeout, request.name)

    def checkpoints(self, ref: str) -> list[training_job_pb2.Checkpoint]:
        return list(
            call(
                self._stub.ListCheckpoints,
                train_service_pb2.ListCheckpointsRequest(parent=self.job_name(ref)),
            ).checkpoints
        )

    def register_checkpoint(self, ref: str, step: int, *, request_id: str = "") -> str:
        """Register a kept checkpoint as a model version; returns the version's name."""
        return call(
            self._stub.RegisterCheckpoint,
            train_service_pb2.RegisterCheckpointRequest(
                name=f"{self.job_name(ref)}/checkpoints/{step}", request_id=request_id
            ),
        ).model_version

    def metrics(self, ref: str) -> list[training_job_pb2.MetricPoint]:
        return list(
            call(
                self._stub.ListMetricPoints,
                train_service_pb2.ListMetricPointsRequest(parent=self.job_name(ref)),
            ).metric_points
        )

    def report(self, ref: str) -> training_job_pb2.TrainingReport:
        """The training report: `diagnosis` (verdict, advice, spikes with sample ids, best checkpoint),
        `report` (JSON: curves, mixture, rules) and presigned URLs of its `charts` once the job ended."""
        return call(
            self._stub.GetTrainingReport, train_service_pb2.GetTrainingReportRequest(name=self.job_name(ref))
        )

    def download_report(self, ref: str, directory: str | Path) -> list[Path]:
        """Writes `report.json` and `loss.png` (when stored) into `directory`; returns the paths."""
        result = self.report(ref)
        return save_report(result.report, result.charts, directory)
