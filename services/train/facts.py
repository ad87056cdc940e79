"""What a new job needs to know from the other services, fetched in one place over `kit.peers`:
the base model (its config and tokenizer), each dataset version (state, kind, size), the rows the
mixture takes (the data service's plan), the sequence lengths a trainer will see (the data service's
insight with the base model's tokenizer), the reward model, the evaluation set and the metric names.

Nothing here downloads a dataset: sizes and token counts come from the data service, computed once
per version. The checks over these facts are pure functions in `checks.py`; gathering stops at the
first fact that makes the job impossible, naming its field.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.kit.peers import DATASET_KINDS, Peers
from services.train import checks
from services.train.spec import JobSpec
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import data_service_pb2, dataset_pb2
from tuneforge.eval.v1 import eval_service_pb2
from tuneforge.registry.v1 import model_pb2

MODEL_VERSION = re.compile(r"^projects/[^/]+/models/[^/]+/versions/[^/]+$")
PREFIX = "training_job"
INSIGHT_DEADLINE_SECONDS = 600.0


@dataclass
class BaseFacts:
    """The model a job starts from."""

    name: str
    config: dict[str, Any]
    # The model version whose tokenizer.json counts tokens ("" for a local folder).
    tokenizer: str = ""

    @property
    def position_limit(self) -> int:
        return int(self.config.get("max_position_embeddings") or 1 << 20)


@dataclass
class DatasetFacts:
    """A dataset version a job reads."""

    name: str
    kind: str
    rows: int
    planned_rows: int = 0
    insight: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobFacts:
    base: BaseFacts
    training: list[DatasetFacts]
    validation: DatasetFacts | None = None
    metrics: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Settings:
    local_model_dirs: tuple[Path, ...] = ()
    spool_dir: str | None = None


async def gather(peers: Peers, project: str, spec: JobSpec, settings: Settings) -> JobFacts:
    """The facts of `spec` (resolving its names to the versions they mean now, in place)."""
    base = await _base(peers, project, spec, settings)
    method = spec.training_method
    training = []
    for i, ref in enumerate(spec.training_data):
        version = await peers.ready_dataset_version(
            ref["dataset_version"],
            [method.kind.value],
            f"{PREFIX}.training_data[{i}].dataset_version",
            purpose=f"{method.name} trains on",
        )
        ref["dataset_version"] = version.name  # `latest` resolves now: the job trains on these versions
        same = next((j for j, t in enumerate(training) if t.name == version.name), None)
        if same is not None:
            raise InvalidArgument.field(
                f"{PREFIX}.training_data[{i}].dataset_version",
                f"{version.name} is already training_data[{same}]; name each version once "
                "(a sampling_rate above 1 repeats its rows)",
            )
        training.append(DatasetFacts(version.name, DATASET_KINDS[version.kind], version.row_count))
    await _plan(peers, project, spec, training)
    for i, data in enumerate(training):
        data.insight = await _insight(peers, data.name, base, f"{PREFIX}.training_data[{i}].dataset_version")
        checks.references(spec, data, f"{PREFIX}.training_data[{i}]")
    if spec.replay_share:
        checks.replay_parent(spec)
        for ref in spec.parent["datasets"]:
            # The parent's data must still exist, be readable, and suit this method.
            await peers.ready_dataset_version(
                ref["dataset_version"],
                [method.kind.value],
                f"{PREFIX}.replay_share",
                purpose=f"{method.name} trains on",
            )
    if getattr(spec.method_parameters, "reward_model", ""):
        await _reward_model(peers, project, spec, settings)
    validation = None
    if spec.validation_data:
        version = await peers.ready_dataset_version(
            spec.validation_data,
            [method.kind.value],
            f"{PREFIX}.validation_data",
            purpose=f"{method.name} trains on",
        )
        spec.validation_data = version.name
        validation = DatasetFacts(version.name, DATASET_KINDS[version.kind], version.row_count)
    metrics: set[str] = set()
    if spec.auto_evaluation:
        metrics = await _evaluation(peers, spec)
    return JobFacts(base, training, validation, metrics)


async def _base(peers: Peers, project: str, spec: JobSpec, settings: Settings) -> BaseFacts:
    field_name = f"{PREFIX}.base_model"
    if spec.base_model.startswith("local:///"):
        local = Path(spec.base_model.removeprefix("local://"))
        config = await asyncio.to_thread(checks.local_model, local, settings.local_model_dirs, field_name)
        return BaseFacts(spec.base_model, config)
    if not MODEL_VERSION.match(spec.base_model):
        raise InvalidArgument.field(
            field_name, f"{spec.base_model!r} is neither a model version name nor local:///path"
        )
    if spec.base_model.split("/")[1] != project:
        raise InvalidArgument.field(field_name, f"{spec.base_model} is in another project")
    version = await peers.model_version(spec.base_model, field_name)
    files = {f.path for f in version.files}
    spec.base_model = version.name  # an alias resolves to the version it points at now
    spec.parent = _parent(version, files)
    if "adapter_config.json" in files:
        base_of_adapter = version.lineage.base_model
        if not MODEL_VERSION.match(base_of_adapter):
            raise InvalidArgument.field(
                field_name,
                f"{version.name} is a LoRA adapter whose base model ({base_of_adapter or 'none'}) is not a registered version",
            )
        try:
            version = await peers.model_version(base_of_adapter)
        except (NotFound, FailedPrecondition, PermissionDenied) as error:  # named by its lineage
            raise InvalidArgument.field(field_name, f"the adapter's base model: {error.message}") from None
        files = {f.path for f in version.files}
    checks.model_files(version.name, files, field_name)
    if spec.adapter:
        checks.target_modules(spec.lora.target_modules, list(version.catalog.linear_modules), version.name)
    config = await _config(peers, version.name, settings)
    return BaseFacts(version.name, config, tokenizer=version.name)


def _parent(version: model_pb2.ModelVersion, files: set[str]) -> dict[str, Any] | None:
    """Incremental training: the base is itself a fine-tuned version."""
    if not (version.lineage.source_job or "adapter_config.json" in files):
        return None
    return {
        "version": version.name,
        "adapter": "adapter_config.json" in files,
        "base_model": version.lineage.base_model,
        "datasets": [
            {"dataset_version": d.dataset_version, "sampling_rate": d.sampling_rate}
            for d in version.lineage.dataset_versions
        ],
        "method": json_format.MessageToDict(version.lineage.hyperparameters).get("method", ""),
    }


async def _config(peers: Peers, version: str, settings: Settings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=settings.spool_dir) as tmp:
        await peers.download_model(version, Path(tmp), ["config.json"])
        return json.loads(await asyncio.to_thread((Path(tmp) / "config.json").read_text))


async def _plan(peers: Peers, project: str, spec: JobSpec, training: list[DatasetFacts]) -> None:
    """The rows the mixture takes from each source, as the data service will sample them."""
    request = data_service_pb2.PlanMixtureRequest(
        parent=f"projects/{project}",
        sources=[common_pb2.DatasetVersionRef(**r) for r in spec.training_data],
        seed=spec.hyperparameters.seed,
    )
    plan = await peers.call("data", "PlanMixture", request, field=f"{PREFIX}.training_data")
    for data, source in zip(training, plan.sources, strict=True):
        data.planned_rows = source.sampled_samples


async def _insight(peers: Peers, version: str, base: BaseFacts, field_name: str) -> dict[str, Any]:
    """The data service's insight of `version`, with the base model's tokenizer when it has one,
    at the base model's position limit; waits while a data worker computes it."""
    request = data_service_pb2.ComputeDatasetInsightRequest(
        name=version, tokenizer=base.tokenizer, max_sequence_length=min(base.position_limit, 1 << 30)
    )
    insight = await peers.call("data", "ComputeDatasetInsight", request, field=field_name)
    final = (dataset_pb2.COMPUTATION_STATE_READY, dataset_pb2.COMPUTATION_STATE_FAILED)
    if insight.state not in final:
        watch = data_service_pb2.WatchDatasetInsightRequest(name=insight.name)
        async for insight in peers.stream(
            "data", "WatchDatasetInsight", watch, field=field_name, deadline=INSIGHT_DEADLINE_SECONDS
        ):
            if insight.state in final:
                break
    if insight.state != dataset_pb2.COMPUTATION_STATE_READY:
        raise FailedPrecondition(
            f"{version}: its token counts could not be computed ({insight.failure.message}); try again",
            reason="INSIGHT_FAILED",
        )
    return json_format.MessageToDict(insight.report)


async def _reward_model(peers: Peers, project: str, spec: JobSpec, settings: Settings) -> None:
    field_name = f"{PREFIX}.method_parameters.reward_model"
    ref = spec.method_parameters.reward_model
    if not MODEL_VERSION.match(ref) or ref.split("/")[1] != project:
        raise InvalidArgument.field(field_name, f"{ref!r} is not a model version of project {project}")
    version = await peers.model_version(ref, field_name)
    checks.reward_model_files(version.name, {f.path for f in version.files}, field_name)
    config = await _config(peers, version.name, settings)
    checks.reward_model_head(version.name, config, field_name)
    spec.method_parameters.reward_model = version.name


async def _evaluation(peers: Peers, spec: JobSpec) -> set[str]:
    """The evaluation set of the automatic evaluation, and the metric names the eval service knows."""
    assert spec.auto_evaluation is not None
    field_name = f"{PREFIX}.auto_evaluation.dataset_version"
    version = await peers.ready_dataset_version(
        spec.auto_evaluation["dataset_version"],
        ["eval", "sft"],
        field_name,
        purpose="an automatic evaluation runs on",
    )
    spec.auto_evaluation["dataset_version"] = version.name
    response = await peers.call("eval", "ListMetrics", eval_service_pb2.ListMetricsRequest())
    return {m.name for m in response.metrics}
