"""Checks on what callers send the registry: names, tags, metrics, lineage, declared files.

Pure functions: each raises InvalidArgument naming the offending field, or returns clean values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from services.kit.errors import FieldViolation, InvalidArgument, ResourceExhausted
from services.kit.names import NamePattern, check_tags, check_text
from services.registry import weights
from services.registry.convert import ALIAS, UPLOAD
from tuneforge.common.v1 import common_pb2
from tuneforge.registry.v1 import model_pb2

MANIFEST_FILE = "MANIFEST.json"

VERSION_SEGMENT = re.compile(r"^[1-9][0-9]{0,9}$")
ALIAS_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
UID_HEX = re.compile(r"^[0-9a-f]{32}$")
EXTERNAL_BASE = re.compile(r"^(hf://[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9._\-]+)?|local:///\S+)$")
RESERVED_ALIASES = {"latest"}


def check_version_segment(value: str, field: str) -> str:
    if VERSION_SEGMENT.match(value) or ALIAS_ID.match(value):
        return value
    raise InvalidArgument.field(
        field, f"version {value!r} is neither a version number, an alias nor `latest`"
    )


def check_alias(value: str, field: str) -> str:
    if not ALIAS_ID.match(value):
        raise InvalidArgument.field(
            field, f"alias {value!r} must be a lower-case letter then up to 62 letters, digits, '-' or '_'"
        )
    return value


def check_uid(value: str, field: str) -> str:
    if not UID_HEX.match(value):
        raise InvalidArgument.field(field, f"{value!r} is not an upload id")
    return value


VERSION = NamePattern(
    "projects/{project}/models/{model}/versions/{version}", {"version": check_version_segment}
)
ALIAS_NAME = NamePattern(ALIAS.template, {"alias": check_alias})
UPLOAD_NAME = NamePattern(UPLOAD.template, {"upload": check_uid})
DATASET_VERSION = NamePattern(
    "projects/{project}/datasets/{dataset}/versions/{version}",
    {
        "version": lambda v, f: (
            v if VERSION_SEGMENT.match(v) else _bad(f, f"dataset version {v!r} is not a number")
        )
    },
)
TRAINING_JOB = NamePattern("projects/{project}/trainingJobs/{job}")


def _bad(field: str, description: str) -> str:
    raise InvalidArgument.field(field, description)


@dataclass(frozen=True)
class RegistryLimits:
    max_file_bytes: int = 200 * 1024**3
    max_version_bytes: int = 1024**4
    upload_ttl: timedelta = timedelta(hours=6)
    url_ttl: timedelta = timedelta(hours=1)
    derive_memory_bytes: int = 8 * 1024**3
    derive_timeout: timedelta = timedelta(hours=1)


@dataclass
class VersionSpec:
    """A validated request for a new version: what the caller may set."""

    description: str
    tags: dict[str, str]
    metrics: dict[str, float]
    base_model: str
    parent_version: str
    source_job: str
    dataset_versions: list[dict[str, Any]]
    hyperparameters: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Validation of user input


def check_metrics(metrics: dict[str, float], field: str) -> dict[str, float]:
    if len(metrics) > 256:
        raise InvalidArgument.field(field, "at most 256 metrics are allowed")
    for key, value in metrics.items():
        if not key or len(key) > 128:
            raise InvalidArgument.field(field, f"metric name {key!r} must be 1-128 characters")
        if not math.isfinite(value):
            raise InvalidArgument.field(f"{field}.{key}", f"must be a finite number (got {value})")
    return dict(metrics)


def check_version_spec(spec: model_pb2.ModelVersion, field: str) -> VersionSpec:
    lineage = spec.lineage
    violations: list[FieldViolation] = []

    def collect(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except InvalidArgument as exc:
            violations.extend(exc.violations)
            return None

    description = collect(lambda: check_text(spec.description, f"{field}.description", 4000))
    tags = collect(lambda: check_tags(dict(spec.tags), f"{field}.tags"))
    metrics = collect(lambda: check_metrics(dict(spec.metrics), f"{field}.metrics"))
    base = lineage.base_model
    if base and not base.startswith("projects/") and not EXTERNAL_BASE.match(base):
        violations.append(
            FieldViolation(
                f"{field}.lineage.base_model",
                f"{base!r} is neither a model version name (projects/…/models/…/versions/N), hf://org/name nor local:///path",
            )
        )
    if lineage.source_job:
        collect(lambda: TRAINING_JOB.parse(lineage.source_job, f"{field}.lineage.source_job"))
    datasets = []
    for i, ref in enumerate(lineage.dataset_versions):
        path = f"{field}.lineage.dataset_versions[{i}]"
        collect(
            lambda ref=ref, path=path: DATASET_VERSION.parse(ref.dataset_version, f"{path}.dataset_version")
        )
        if not 0.01 <= ref.sampling_rate <= 10:
            violations.append(
                FieldViolation(
                    f"{path}.sampling_rate", f"must be between 0.01 and 10 (got {ref.sampling_rate})"
                )
            )
        datasets.append({"dataset_version": ref.dataset_version, "sampling_rate": ref.sampling_rate})
    if violations:
        raise InvalidArgument.fields(violations)
    return VersionSpec(
        description=description,
        tags=tags,
        metrics=metrics,
        base_model=base,
        parent_version=lineage.parent_version,
        source_job=lineage.source_job,
        dataset_versions=datasets,
        hyperparameters=json_format.MessageToDict(lineage.hyperparameters),
    )


def check_declared_files(
    files: Sequence[common_pb2.FileEntry], limits: RegistryLimits
) -> list[dict[str, Any]]:
    if not files:
        raise InvalidArgument.field("files", "declare at least one file")
    if len(files) > weights.MAX_FILES:
        raise InvalidArgument.field("files", f"at most {weights.MAX_FILES} files per version")
    seen: set[str] = set()
    out = []
    total = 0
    for i, entry in enumerate(files):
        path = weights.check_path(entry.path, f"files[{i}].path")
        if path == MANIFEST_FILE:
            raise InvalidArgument.field(f"files[{i}].path", f"{MANIFEST_FILE} is written by the registry")
        if path in seen:
            raise InvalidArgument.field(f"files[{i}].path", f"{path} is declared twice")
        seen.add(path)
        if not SHA256_HEX.match(entry.sha256):
            raise InvalidArgument.field(f"files[{i}].sha256", "must be 64 lower-case hex digits")
        if not 0 <= entry.size_bytes <= limits.max_file_bytes:
            raise InvalidArgument.field(
                f"files[{i}].size_bytes",
                f"must be between 0 and {limits.max_file_bytes} (got {entry.size_bytes})",
            )
        total += entry.size_bytes
        out.append({"path": path, "size_bytes": entry.size_bytes, "sha256": entry.sha256})
    if total > limits.max_version_bytes:
        raise ResourceExhausted(
            f"the files add up to {total} bytes; a version holds at most {limits.max_version_bytes}"
        )
    return out


def detect_kind(paths: Sequence[str]) -> int:
    names = {p.rsplit("/", 1)[-1] for p in paths}
    if "adapter_config.json" in names:
        return model_pb2.MODEL_VERSION_KIND_LORA_ADAPTER
    if "config.json" in names and any(p.endswith(".safetensors") for p in paths):
        return model_pb2.MODEL_VERSION_KIND_FULL
    return model_pb2.MODEL_VERSION_KIND_OTHER


def resolve_update_mask(
    mask_paths: Sequence[str], message: Message, allowed: set[str], field: str = "update_mask"
) -> set[str]:
    """AIP-134: an empty mask means every populated mutable field."""
    if not mask_paths:
        populated = {fd.name for fd, _ in message.ListFields()}
        return populated & allowed
    unknown = [p for p in mask_paths if p not in allowed]
    if unknown:
        raise InvalidArgument.field(
            field, f"cannot update {', '.join(unknown)}; updatable: {', '.join(sorted(allowed))}"
        )
    return set(mask_paths)


# ---------------------------------------------------------------------------------------------
