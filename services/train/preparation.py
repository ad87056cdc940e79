"""Getting a job's folder ready on a worker: the base model (and the adapter it continues, the
reward model) from the registry, the training mixture (and its validation rows) materialized by the
data service, the parent's data replayed, and `spec.json`, `train.jsonl`, `validation.jsonl` and
`mixture.json` written for the runner.

The worker never re-runs the data service's sampling: it asks for the mixture and reads what comes
back. Only replay — a share of the parent's own mixture, drawn at random — is the worker's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

from services.kit.errors import FailedPrecondition, NotFound
from services.kit.peers import Peers, fetch_urls
from services.kit.rows import Row, read_parquet
from services.train.repo import JobRow
from services.train.spec import JobSpec
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import data_service_pb2, dataset_pb2

MIXTURE_DEADLINE_SECONDS = 3600.0


def label_of(version: str) -> str:
    """`essays/v3` for `projects/p/datasets/essays/versions/3`: how mixtures name a source's rows."""
    parts = version.split("/")
    return f"{parts[3]}/v{parts[5]}"


async def materialize(
    peers: Peers,
    project: str,
    refs: list[dict[str, Any]],
    seed: int,
    validation_ratio: float,
    request_id: str,
    folder: Path,
) -> tuple[dataset_pb2.Mixture, list[Row], list[Row]]:
    """The data service's mixture of `refs` (split when `validation_ratio`): its train and validation rows."""
    request = data_service_pb2.MaterializeMixtureRequest(
        parent=f"projects/{project}",
        sources=[common_pb2.DatasetVersionRef(**r) for r in refs],
        seed=seed,
        validation_ratio=validation_ratio,
        request_id=request_id,
    )
    mixture = await peers.call("data", "MaterializeMixture", request)
    final = (dataset_pb2.COMPUTATION_STATE_READY, dataset_pb2.COMPUTATION_STATE_FAILED)
    if mixture.state not in final:
        watch = data_service_pb2.WatchMixtureRequest(name=mixture.name)
        async for mixture in peers.stream("data", "WatchMixture", watch, deadline=MIXTURE_DEADLINE_SECONDS):
            if mixture.state in final:
                break
    if mixture.state != dataset_pb2.COMPUTATION_STATE_READY:
        raise FailedPrecondition(
            f"the training data could not be mixed: {mixture.failure.message}", reason="DATA_UNAVAILABLE"
        )
    ready = await peers.call("data", "GetMixture", data_service_pb2.GetMixtureRequest(name=mixture.name))
    await fetch_urls(ready.urls, folder)
    train = await asyncio.to_thread(read_parquet, folder / "train.parquet")
    validation = []
    if (folder / "validation.parquet").exists():
        validation = await asyncio.to_thread(read_parquet, folder / "validation.parquet")
    return ready, train, validation


def with_replay(
    train: list[Row], pool: list[Row], share: float, seed: int
) -> tuple[list[Row], list[Row], dict[str, int]]:
    """`train` with rows drawn from the parent's mixture `pool` so that they make `share` of the
    training rows (repeats only when the pool is smaller than needed), ids marked `replay:`, all
    shuffled with the seed. Returns (mixed, replayed, replayed rows per source label)."""
    count = round(len(train) * share / (1 - share))
    rng = random.Random(seed)
    picks = rng.sample(pool, count) if count <= len(pool) else rng.choices(pool, k=count)
    per_label: dict[str, int] = {}
    for r in picks:
        label = r["id"].split(":", 1)[0]
        per_label[label] = per_label.get(label, 0) + 1
    replay = [{**r, "id": f"replay:{r['id']}"} for r in picks]
    mixed = train + replay
    rng.shuffle(mixed)
    return mixed, replay, per_label


async def models(peers: Peers, spec: JobSpec, job_dir: Path) -> None:
    """The base model, the adapter it continues, the reward model, into the job folder."""
    parent = spec.parent or {}
    if spec.base_model.startswith("local:///"):
        await asyncio.to_thread(
            shutil.copytree, Path(spec.base_model.removeprefix("local://")), job_dir / "base"
        )
    elif parent.get("adapter"):
        await peers.download_model(parent["base_model"], job_dir / "base")
        await peers.download_model(parent["version"], job_dir / "parent_adapter")
    else:
        await peers.download_model(spec.base_model, job_dir / "base")
    reward_model = getattr(spec.method_parameters, "reward_model", "")
    if reward_model:
        await peers.download_model(reward_model, job_dir / "reward_model")


async def prepare(peers: Peers, row: JobRow, job_dir: Path) -> dict[str, Any]:
    """Everything the runner reads into `job_dir`; returns the mixture's facts (`mixture.json`)."""
    spec = JobSpec.from_json(row.spec)
    seed = spec.hyperparameters.seed
    await asyncio.to_thread(shutil.rmtree, job_dir, True)
    (job_dir / "data").mkdir(parents=True)
    (job_dir / "spec.json").write_text(json.dumps(spec.to_json()))
    await models(peers, spec, job_dir)
    mixture, train, validation = await materialize(
        peers,
        row.project,
        spec.training_data,
        seed,
        spec.validation_split,
        f"{row.uid}-train",
        job_dir / "data" / "train",
    )
    if spec.validation_data:
        await peers.download_dataset_version(spec.validation_data, job_dir / "data" / "validation")
        validation = await asyncio.to_thread(read_parquet, job_dir / "data" / "validation" / "data.parquet")
    facts: dict[str, Any] = {
        "sources": [
            {"label": label_of(s.source.dataset_version), "rows": s.samples, "rate": s.source.sampling_rate}
            for s in mixture.plan.sources
        ],
        "new_rows": len(train),
        "validation_rows": len(validation),
        "mixtures": [mixture.name],
    }
    if spec.replay_share:
        train, facts["replay"], pool_name = await _replay(peers, row, spec, train, job_dir)
        facts["mixtures"].append(pool_name)
    facts["train_rows"] = len(train)
    for name, rows in (("train.jsonl", train), ("validation.jsonl", validation)):
        if rows:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            await asyncio.to_thread((job_dir / name).write_text, text)
    (job_dir / "mixture.json").write_text(json.dumps(facts, ensure_ascii=False))
    return facts


async def release(peers: Peers, names: list[str]) -> None:
    """Delete the mixtures a finished job read (a mixture already gone is fine)."""
    for name in names:
        with contextlib.suppress(NotFound):
            await peers.call("data", "DeleteMixture", data_service_pb2.DeleteMixtureRequest(name=name))


async def _replay(
    peers: Peers, row: JobRow, spec: JobSpec, train: list[Row], job_dir: Path
) -> tuple[list[Row], dict[str, Any], str]:
    """The parent's own mixture (its datasets at their rates, this job's seed), sampled so that
    replayed rows make `replay_share` of the training rows."""
    parent = spec.parent or {}
    seed = spec.hyperparameters.seed
    pool_mixture, pool, _ = await materialize(
        peers, row.project, parent["datasets"], seed, 0.0, f"{row.uid}-replay", job_dir / "data" / "replay"
    )
    labels = {label_of(d["dataset_version"]): d["dataset_version"] for d in parent["datasets"]}
    sizes = {label_of(s.source.dataset_version): s.samples for s in pool_mixture.plan.sources}
    mixed, replay, per_label = with_replay(train, pool, spec.replay_share, seed)
    facts = {
        "parent": parent["version"],
        "rows": len(replay),
        "share": spec.replay_share,
        "datasets": [
            {
                "dataset_version": labels[label],
                "rows": n,
                "sampling_rate": round(n / max(1, sizes[label]), 4),
            }
            for label, n in sorted(per_label.items())
        ],
        "ids": [r["id"] for r in replay],
    }
    return mixed, facts, pool_mixture.name
