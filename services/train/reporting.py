"""The training report of a job as stored and as served: assembled from its metric points, kept
checkpoints and mixture (`report.py` holds the curves' rules), stored as `report.json` and
`loss.png` when the job ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import timedelta
from typing import Any

from google.protobuf import json_format, struct_pb2
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.db import Database
from services.kit.store import ObjectStore
from services.train import report
from services.train.convert import TERMINAL, job_name
from services.train.repo import CheckpointRow, JobRow, MetricRow
from services.train.spec import JobSpec
from tuneforge.common.v1 import common_pb2
from tuneforge.train.v1 import training_job_pb2

log = logging.getLogger(__name__)


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
        vocab_size=spec.vocab_size,
    )
    with contextlib.suppress(Exception):  # jobs that never reached a worker have no mixture
        built["mixture"] = json.loads(await store.get_bytes(f"jobs/{row.uid}/mixture.json"))
    return built


async def store_report(db: Database, store: ObjectStore, row: JobRow) -> None:
    """report.json and loss.png under jobs/{uid}/report/; a failure here never fails the job."""
    try:
        built = await assemble_report(db, store, row)
        if not built["curves"]["steps"] and not built["curves"]["validation_steps"]:
            return  # nothing was trained: no curves to draw
        image = await asyncio.to_thread(report.chart, built)
        prefix = f"jobs/{row.uid}/report/"
        await store.put_bytes(prefix + "loss.png", image, "image/png")
        await store.put_bytes(
            prefix + "report.json", json.dumps(built, ensure_ascii=False).encode(), "application/json"
        )
    except Exception:
        log.warning("the training report could not be stored", extra={"job": job_name(row)}, exc_info=True)


async def report_proto(db: Database, store: ObjectStore, row: JobRow) -> training_job_pb2.TrainingReport:
    """The stored report of a finished job, or one computed now from the metric history."""
    prefix = f"jobs/{row.uid}/report/"
    stored = row.state in TERMINAL and await store.exists(prefix + "report.json")
    if stored:
        built = json.loads(await store.get_bytes(prefix + "report.json"))
    else:
        built = await assemble_report(db, store, row)
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
            start_loss=diagnosis.get("start_loss", 0.0),
            end_loss=diagnosis.get("end_loss", 0.0),
            uniform_loss=diagnosis.get("uniform_loss", 0.0),
        ),
        report=json_format.ParseDict(built, struct_pb2.Struct()),
        charts=[
            common_pb2.PresignedUrl(
                path=chart, url=store.presigned_get(prefix + chart, timedelta(hours=1)), method="GET"
            )
            for chart in built["charts"]
        ],
        final=stored,
    )
