"""A job's outputs as registry versions: their lineage, which files of a checkpoint are the model,
and registering a folder as a new version of the job's output model (over `kit.peers`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2

from services.kit.peers import Peers
from services.train.convert import job_name
from services.train.repo import JobRow
from services.train.spec import JobSpec
from tuneforge.common.v1 import common_pb2
from tuneforge.registry.v1 import model_pb2

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
    hyperparameters: dict[str, Any] = {
        "method": spec.method,
        "tuning": spec.tuning,
        **data["hyperparameters"],
        "lora": data["lora"],
    }
    if fields(spec.method_parameters):
        hyperparameters["method_parameters"] = data["method_parameters"]
    if spec.replay_share:
        hyperparameters["replay_share"] = spec.replay_share
    lineage: dict[str, Any] = {
        "base_model": parent["base_model"] if parent.get("adapter") else spec.base_model,
        "source_job": job_name(row),
        # Replayed parent data is part of what the output learned from, at its effective rate.
        "dataset_versions": spec.training_data + parent.get("replayed", []),
        "hyperparameters": hyperparameters,
    }
    if parent:
        lineage["parent_version"] = parent["version"]
    return lineage


def version_spec(
    description: str,
    lineage: Mapping[str, Any],
    *,
    tags: Mapping[str, str] | None = None,
    metrics: Mapping[str, float] | None = None,
) -> model_pb2.ModelVersion:
    """The registry request for a new version with this lineage."""
    lineage = dict(lineage)
    hyperparameters = struct_pb2.Struct()
    hyperparameters.update(lineage.pop("hyperparameters", {}) or {})
    datasets = [common_pb2.DatasetVersionRef(**d) for d in lineage.pop("dataset_versions", [])]
    return model_pb2.ModelVersion(
        description=description,
        tags=dict(tags or {}),
        metrics=dict(metrics or {}),
        lineage=model_pb2.Lineage(hyperparameters=hyperparameters, dataset_versions=datasets, **lineage),
    )


async def register(
    peers: Peers,
    row: JobRow,
    folder: Path,
    version: model_pb2.ModelVersion,
    request_id: str,
    *,
    display_name: str = "",
) -> model_pb2.ModelVersion:
    """Register `folder` as a new version of the job's output model (created on first use)."""
    spec = JobSpec.from_json(row.spec)
    model_id = spec.output_model.rsplit("/", 1)[-1]
    await peers.ensure_model(
        row.project,
        model_id,
        tags={"source_job": row.job_id},
        display_name=display_name,
        # One id per request body: a request_id is bound to what it first asked for.
        request_id=f"{row.uid}-model-{hashlib.sha256(display_name.encode()).hexdigest()[:8]}",
    )
    return await peers.upload_model(spec.output_model, folder, version, request_id)
