"""Presets (精调样板) as the API shows them, and installing one: its datasets are created in the
project and each gets a version that a data worker generates and ingests (`tasks.py`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.data import presets
from services.data.catalog import PRESET, DataCatalog
from services.data.convert import struct
from services.data.datasets import Datasets
from services.data.repo import DatasetRow
from services.data.versions import NewVersion, Versions
from services.kit.auth import require_project
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.names import PROJECT, check_text
from services.kit.rows import Kind
from tuneforge.data.v1 import dataset_pb2


class PresetCatalog:
    def __init__(self, catalog: DataCatalog, datasets: Datasets, versions: Versions) -> None:
        self.catalog = catalog
        self.datasets = datasets
        self.versions = versions

    async def install(
        self, parent: str, preset: str, request_id: str
    ) -> tuple[list[dataset_pb2.DatasetVersion], str]:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        check_text(request_id, "request_id", 128)
        preset_id = PRESET.parse(preset, "preset")["preset"]
        if preset_id == presets.GENERAL_ID:
            datasets = presets.GENERAL_DATASETS
        elif preset_id in presets.PRESETS:
            datasets = presets.PRESETS[preset_id].datasets
        else:
            raise NotFound(f"preset {preset} does not exist; `ListPresets` shows them")

        def install(session: Session) -> list[dataset_pb2.DatasetVersion]:
            versions = []
            for dataset_id, kind in datasets.items():
                dataset = self._ensure_dataset(session, project, dataset_id, kind, preset_id)
                key = f"{request_id}:{preset_id}" if request_id else ""
                versions.append(
                    self.versions.accept_in(
                        session,
                        dataset.uid,
                        NewVersion(
                            kind=kind,
                            task={"op": "preset", "preset": preset_id, "dataset": dataset_id},
                            recipe={
                                "type": "upload",
                                "via": "preset",
                                "file": f"{dataset_id}.jsonl",
                                "error_policy": "fail",
                            },
                            source_file=f"{dataset_id}.jsonl",
                            description=f"installed from preset {preset_id}",
                            tags={"preset": preset_id},
                            request_id=key,
                        ),
                    )
                )
            return versions

        return await self.catalog.outbox.write(self.catalog.db, install), preset_id

    def _ensure_dataset(
        self, session: Session, project: str, dataset_id: str, kind: Kind, preset_id: str
    ) -> DatasetRow:
        row = session.scalar(
            select(DatasetRow).where(DatasetRow.project == project, DatasetRow.dataset_id == dataset_id)
        )
        if row is not None:
            if row.kind != kind.value:
                raise FailedPrecondition(
                    f"dataset {dataset_id} already exists with kind {row.kind}; the preset needs {kind.value}",
                    reason="KIND_CONFLICT",
                )
            return row
        return self.datasets.insert_dataset(
            session, project, dataset_id, kind, "", f"from preset {preset_id}", {"preset": preset_id}, ""
        )


def preset_proto(preset_id: str) -> dataset_pb2.Preset:
    if preset_id == presets.GENERAL_ID:
        return dataset_pb2.Preset(
            name=f"presets/{presets.GENERAL_ID}",
            display_name="通用语料 (general corpus)",
            description=presets.GENERAL_DESCRIPTION,
            method="sft",
            datasets={k: v.value for k, v in presets.GENERAL_DATASETS.items()},
            train_rows=400,
            eval_rows=0,
        )
    spec = presets.PRESETS[preset_id]
    return dataset_pb2.Preset(
        name=f"presets/{spec.id}",
        display_name=spec.display_name,
        description=spec.description,
        method=spec.method,
        hyperparameters=struct(spec.hyperparameters),
        metrics=list(spec.metrics),
        datasets={k: v.value for k, v in spec.datasets.items()},
        train_rows=spec.train_rows,
        eval_rows=spec.eval_rows,
    )


def all_presets() -> list[dataset_pb2.Preset]:
    return [preset_proto(p) for p in [*presets.PRESETS, presets.GENERAL_ID]]


def get_preset(name: str) -> dataset_pb2.Preset:
    preset_id = PRESET.parse(name, "name")["preset"]
    if preset_id != presets.GENERAL_ID and preset_id not in presets.PRESETS:
        raise NotFound(f"preset {name} does not exist")
    return preset_proto(preset_id)
