"""Rows to API messages."""

from __future__ import annotations

from services.kit.names import NamePattern
from services.kit.times import to_timestamp
from services.train.repo import CheckpointRow, JobRow, MetricRow
from services.train.spec import JobSpec, hyperparameters_proto, method_parameters_proto
from tuneforge.common.v1 import common_pb2
from tuneforge.enums import enum_values
from tuneforge.train.v1 import training_job_pb2

JOB = NamePattern("projects/{project}/trainingJobs/{job}")
STATES = enum_values(training_job_pb2.TrainingJobState, "TRAINING_JOB_STATE_")
METHOD_VALUES = enum_values(training_job_pb2.TrainingMethod, "TRAINING_METHOD_")
TUNING_VALUES = enum_values(training_job_pb2.TuningMode, "TUNING_MODE_")
PRIORITY_VALUES = enum_values(training_job_pb2.JobPriority, "JOB_PRIORITY_")
TERMINAL = {"succeeded", "failed", "cancelled"}


def job_name(row: JobRow) -> str:
    return JOB.format(project=row.project, job=row.job_id)


def job_to_proto(row: JobRow) -> training_job_pb2.TrainingJob:
    spec = JobSpec.from_json(row.spec)
    message = training_job_pb2.TrainingJob(
        name=job_name(row),
        uid=row.uid,
        display_name=row.display_name,
        state=STATES[row.state],
        base_model=spec.base_model,
        method=spec.method,
        tuning=spec.tuning,
        training_method=METHOD_VALUES[spec.method],
        tuning_mode=TUNING_VALUES[spec.tuning],
        job_priority=PRIORITY_VALUES[spec.priority],
        lora=training_job_pb2.LoraConfig(
            rank=spec.lora.rank,
            alpha=spec.lora.alpha,
            dropout=spec.lora.dropout,
            target_modules=spec.lora.target_modules,
        ),
        training_data=[common_pb2.DatasetVersionRef(**d) for d in spec.training_data],
        validation_data=spec.validation_data,
        validation_split=spec.validation_split,
        hyperparameters=hyperparameters_proto(spec.hyperparameters),
        output_model=spec.output_model,
        current_step=row.current_step,
        total_steps=row.total_steps,
        overlength_samples=row.overlength_samples,
        final_model_version=row.final_model_version,
        best_model_version=row.best_model_version,
        metrics=row.metrics,
        create_time=to_timestamp(row.create_time),
        attempt=row.attempt,
        priority=spec.priority,
        method_parameters=method_parameters_proto(spec),
        replay_share=spec.replay_share,
        preemptions=row.preemptions,
        check_only=spec.check_only,
        resources=training_job_pb2.Resources(
            accelerators_per_node=spec.resources.accelerators_per_node,
            nodes=spec.resources.nodes,
            accelerator_kind=spec.resources.accelerator_kind,
            accelerator_memory_bytes=spec.resources.accelerator_memory_bytes,
        ),
        restarts=row.restarts,
        worker=row.worker,
    )
    if spec.auto_evaluation:
        message.auto_evaluation.dataset_version = spec.auto_evaluation["dataset_version"]
        message.auto_evaluation.metrics.extend(spec.auto_evaluation["metrics"])
    if row.error_reason:
        message.error.reason = row.error_reason
        message.error.message = row.error_message
    if row.start_time:
        message.start_time.CopyFrom(to_timestamp(row.start_time))
    if row.end_time:
        message.end_time.CopyFrom(to_timestamp(row.end_time))
    return message


def checkpoint_to_proto(row: CheckpointRow, job: str) -> training_job_pb2.Checkpoint:
    return training_job_pb2.Checkpoint(
        name=f"{job}/checkpoints/{row.step}",
        step=row.step,
        epoch=row.epoch,
        validation_loss=row.validation_loss or 0.0,
        best=row.best,
        files=[common_pb2.FileEntry(**f) for f in row.files],
        create_time=to_timestamp(row.create_time),
    )


def metric_to_proto(row: MetricRow) -> training_job_pb2.MetricPoint:
    return training_job_pb2.MetricPoint(
        step=row.step,
        epoch=row.epoch,
        loss=row.loss,
        validation_loss=row.validation_loss or 0.0,
        has_validation_loss=row.validation_loss is not None,
        learning_rate=row.learning_rate,
        grad_norm=row.grad_norm,
        tokens_per_second=row.tokens_per_second,
        time=to_timestamp(row.time),
        method_metrics=row.extra or {},
        sample_ids=row.sample_ids or [],
    )
