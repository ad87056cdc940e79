"""The evaluation worker: pulls evaluations from the JetStream work queue, generates answers in a
child process (`services.eval.runner`), scores them, and stores predictions and results.

    python -m services.eval.worker
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from sqlalchemy.orm import Session

from services.eval import metrics, report
from services.eval.evaluations import emit, evaluation_name
from services.eval.repo import OUTBOX, EvaluationRow
from services.eval.scores import ScoreRule
from services.kit import graders
from services.kit.bus import EVAL_QUEUE_STREAM, EVAL_QUEUE_SUBJECTS, EventBus
from services.kit.children import child_environment, resident_bytes
from services.kit.db import Database
from services.kit.judging import aggregate_pairwise, parse_score
from services.kit.outbox import Outbox
from services.kit.peers import Peers
from services.kit.rows import read_parquet
from services.kit.server import open_runtime, run_until_signalled
from services.kit.settings import KitSettings, load_settings
from services.kit.store import ObjectStore
from services.kit.times import utcnow
from services.kit.workqueue import hand_back_on_outage, heartbeat, pull_forever
from tuneforge.registry.v1 import model_pb2

log = logging.getLogger("tuneforge.eval-worker")
MIGRATIONS = Path(__file__).parent / "migrations"


class EvalWorkerSettings(KitSettings):
    registry_endpoint: str
    data_endpoint: str
    worker_api_key: SecretStr
    worker_name: str = Field(default_factory=lambda: f"eval-{socket.gethostname()}-{os.getpid()}")
    eval_work_dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()) / "tuneforge-eval-worker")
    eval_ack_wait_seconds: float = Field(60.0, ge=2)
    eval_memory_bytes: int = Field(
        16 * 1024**3, ge=256 * 1024**2, description="resident memory one evaluation's runner may use"
    )


class Cancelled(Exception):
    """The evaluation was cancelled while it ran."""


class EvalWorker:
    def __init__(
        self,
        settings: EvalWorkerSettings,
        db: Database,
        store: ObjectStore,
        bus: EventBus,
        outbox: Outbox,
        peers: Peers,
    ) -> None:
        self.peers = peers
        self.settings = settings
        self.db = db
        self.store = store
        self.bus = bus
        self.outbox = outbox
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        log.info("worker ready", extra={"worker": self.settings.worker_name})
        await pull_forever(
            self.bus,
            stream=EVAL_QUEUE_STREAM,
            subjects=EVAL_QUEUE_SUBJECTS,
            durable="eval-workers",
            ack_wait=self.settings.eval_ack_wait_seconds,
            handle=self.handle,
            stopping=self.stopping,
        )

    def _transition(self, session: Session, uid: str, **values: Any) -> EvaluationRow | None:
        row = session.get(EvaluationRow, uid, with_for_update=True)
        if row is None or row.state == "cancelled":  # cancelled by the caller: it stays so
            return None
        state_before = row.state
        for key, value in values.items():
            setattr(row, key, value)
        row.update_time = utcnow()
        if row.state != state_before:
            emit(
                self.outbox,
                session,
                row,
                "completed" if row.state in ("succeeded", "failed") else "state_changed",
            )
        session.flush()
        session.expunge(row)
        return row

    async def handle(self, message: Any) -> None:
        uid = message.data.decode()
        row = await self.db.run(lambda s: s.get(EvaluationRow, uid))
        if row is None or row.state in ("succeeded", "failed", "cancelled"):
            await message.ack()
            return
        row = await self.outbox.write(
            self.db, lambda s: self._transition(s, uid, state="running", done_samples=0)
        )
        beat = asyncio.create_task(heartbeat(message, self.settings.eval_ack_wait_seconds / 3))
        work = self.settings.eval_work_dir / uid
        handed_back = False
        try:
            results, predictions = await self.evaluate(row, work)
            stored = await self.store.put_bytes(
                f"evaluations/{uid}/predictions.jsonl",
                "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions).encode(),
                "application/x-ndjson",
            )
            summary = report.build(evaluation_name(row), row.spec, results, predictions)
            images = await asyncio.to_thread(report.charts, summary, predictions)
            for image_name, png in images.items():
                await self.store.put_bytes(f"evaluations/{uid}/report/{image_name}", png, "image/png")
            summary["charts"] = list(images)
            await self.store.put_bytes(
                f"evaluations/{uid}/report/report.json",
                json.dumps(summary, ensure_ascii=False, indent=1).encode(),
                "application/json",
            )
            await self.outbox.write(
                self.db,
                lambda s: self._transition(
                    s,
                    uid,
                    state="succeeded",
                    results=results,
                    spec=row.spec,
                    end_time=utcnow(),
                    predictions={"key": stored.key, "sha256": stored.sha256, "size_bytes": stored.size_bytes},
                ),
            )
            log.info("evaluation ended", extra={"evaluation": evaluation_name(row)})
            if row.spec.get("link_to_version"):
                await self._link(row, results)
        except Cancelled:
            log.info("evaluation cancelled", extra={"evaluation": evaluation_name(row)})
        except Exception as exc:
            if await hand_back_on_outage(message, exc, evaluation_name(row)):
                handed_back = True
                return
            log.exception("evaluation failed", extra={"evaluation": evaluation_name(row)})
            reason = f"{type(exc).__name__}: {exc}"
            await self.outbox.write(
                self.db, lambda s: self._transition(s, uid, state="failed", error=reason, end_time=utcnow())
            )
        finally:
            beat.cancel()
            if not handed_back:
                await message.ack()
            shutil.rmtree(work, ignore_errors=True)

    async def _link(self, row: EvaluationRow, results: list[dict[str, Any]]) -> None:
        """Put an automatic evaluation's results on the version it evaluated (metrics `eval.*`)."""
        target = row.spec["link_to_version"]
        result = next((r for r in results if r["model_version"] == target), None)
        if result is None:
            return
        version = await self.peers.model_version(target)
        update = model_pb2.ModelVersion(
            name=target,
            metrics={
                **dict(version.metrics),
                **{f"eval.{k}": v for k, v in result["metrics"].items() if v == v},
            },
            tags={**dict(version.tags), "evaluation": evaluation_name(row)},
        )
        await self.peers.update_model_version(update, ["metrics", "tags"])

    async def _prepare(self, row: EvaluationRow, work: Path) -> list[dict[str, Any]]:
        """The models, the judge and the evaluation set into `work`, then the runner's inputs."""
        await asyncio.to_thread(shutil.rmtree, work, True)
        await asyncio.to_thread(work.mkdir, parents=True)
        spec = row.spec
        models = []
        for i, model in enumerate(spec["models"]):
            await self.peers.download_model(model["name"], work / f"model-{i}")
            base = ""
            if model["base"]:
                base = str(work / f"base-{i}")
                await self.peers.download_model(model["base"], Path(base))
            models.append({"name": model["name"], "dir": str(work / f"model-{i}"), "base_dir": base})
        await self.peers.download_dataset_version(spec["dataset_version"], work / "data")
        judge = dict(spec["judge"]) if spec.get("judge") else None
        if judge and judge["model_version"]:
            await self.peers.download_model(judge["model_version"], work / "judge")
            judge["dir"], judge["base_dir"] = str(work / "judge"), ""
            if judge["base"]:
                await self.peers.download_model(judge["base"], work / "judge-base")
                judge["base_dir"] = str(work / "judge-base")
        return await asyncio.to_thread(_write_inputs, work, spec, models, judge)

    async def evaluate(
        self, row: EvaluationRow, work: Path
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        samples = await self._prepare(row, work)
        logfile = (work / "runner.log").open("ab")
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.eval.runner",
            str(work),
            stdout=logfile,
            stderr=logfile,
            env=child_environment(),
        )
        offset, done, rates, truncated, error = 0, 0, {}, {}, None
        limit = self.settings.eval_memory_bytes
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.wait(), timeout=0.5)
                if child.returncode is None and resident_bytes(child.pid) > limit:
                    raise RuntimeError(
                        f"the evaluation passed its memory limit of {limit / 1e9:.1f} GB "
                        "(TUNEFORGE_EVAL_MEMORY_BYTES) and was stopped"
                    )
                if await self.db.run(lambda s: s.get(EvaluationRow, row.uid).state) == "cancelled":
                    raise Cancelled
                path = work / "progress.jsonl"
                if path.exists():
                    text = path.read_text()
                    complete = text[offset:].rpartition("\n")[0]
                    if complete:
                        offset += len(complete) + 1
                        for line in complete.splitlines():
                            event = json.loads(line)
                            if event["type"] == "progress":
                                done += event["samples"]
                            elif event["type"] == "model_done":
                                rates[event["index"]] = event["tokens_per_second"]
                                truncated[event["index"]] = event.get("truncated", 0)
                            elif event["type"] == "error":
                                error = event["message"]
                        await self.outbox.write(
                            self.db, lambda s, d=done: self._transition(s, row.uid, done_samples=d)
                        )
                if child.returncode is not None:
                    break
        finally:
            if child.returncode is None:  # cancelled, over its limit, or the worker is stopping
                child.kill()
                await asyncio.shield(child.wait())
            logfile.close()
        if child.returncode != 0:
            raise RuntimeError(error or (work / "runner.log").read_text(errors="replace")[-800:])
        return await asyncio.to_thread(self._score, row, work, samples, rates, truncated)

    @staticmethod
    def _score(
        row: EvaluationRow,
        work: Path,
        samples: list[dict[str, Any]],
        rates: dict[int, float],
        truncated: dict[int, int],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        names = row.spec["metrics"]
        by_id = {s["id"]: s for s in samples}
        judge = (
            graders.openai_judge(
                row.spec["grader_endpoint"], os.environ.get("TUNEFORGE_EVAL_JUDGE_API_KEY", "")
            )
            if row.spec.get("grader_endpoint")
            else None
        )
        results, predictions = [], []
        for i, model in enumerate(row.spec["models"]):
            answers = [
                json.loads(line) for line in (work / f"predictions-{i}.jsonl").read_text().splitlines()
            ]
            scored = [
                metrics.Sample(
                    a["prediction"],
                    by_id[a["id"]]["reference"],
                    next(
                        (m["content"] for m in reversed(by_id[a["id"]]["prompt"]) if m["role"] == "user"), ""
                    ),
                    tuple(by_id[a["id"]].get("references") or ()),
                    json.loads(by_id[a["id"]].get("fields") or "{}"),
                )
                for a in answers
            ]
            outcome = metrics.evaluate(
                names,
                scored,
                score_rule=ScoreRule(**row.spec.get("score_rule", {})),
                pass_thresholds=row.spec.get("pass_thresholds") or {},
                python_grader=row.spec.get("python_grader") or None,
                graders=row.spec.get("graders") or (),
                judge=judge,
            )
            per_sample = outcome.per_sample
            results.append(
                {
                    "model_version": model["name"],
                    "metrics": outcome.summary,
                    "samples": len(answers),
                    "tokens_per_second": rates.get(i, 0.0),
                    "unscored": outcome.unscored,
                    "capped_samples": outcome.capped,
                    "pass_rates": outcome.pass_rates,
                    "truncated_prompts": truncated.get(i, 0),
                    "grader_errors": outcome.grader_errors,
                }
            )
            for answer, sample, scores in zip(answers, scored, per_sample, strict=True):
                predictions.append(
                    {
                        "sample_id": answer["id"],
                        "model_version": model["name"],
                        "prompt": sample.prompt,
                        "reference": sample.reference,
                        "prediction": sample.prediction,
                        "scores": {k: v for k, v in scores.items() if v is not None},
                    }
                )
        baseline = results[0]["metrics"]
        for result in results:
            result["delta_vs_baseline"] = {
                k: v - baseline[k] for k, v in result["metrics"].items() if k in baseline
            }
        if (work / "judge.jsonl").exists():
            EvalWorker._judge_results(row, work, results)
        return results, predictions

    @staticmethod
    def _judge_results(row: EvaluationRow, work: Path, results: list[dict[str, Any]]) -> None:
        """Judge scores per model (parse failures counted) and pairwise verdicts vs the baseline."""
        outputs: dict[str, dict[int, dict[str, str]]] = {"single": {}, "second": {}, "first": {}}
        for line in (work / "judge.jsonl").read_text().splitlines():
            entry = json.loads(line)
            kind, index, sample = entry["key"].split("|", 2)
            outputs[kind].setdefault(int(index), {})[sample] = entry["output"]
        for index, result in enumerate(results):
            scores = [parse_score(o) for o in outputs["single"].get(index, {}).values()]
            valid = [s for s in scores if s is not None]
            result["judge_score"] = statistics.fmean(valid) if valid else 0.0
            result["judge_scored"] = len(valid)
            result["judge_parse_failures"] = len(scores) - len(valid)
        pairwise = []
        for index in sorted(outputs["second"]):
            second, first = outputs["second"][index], outputs["first"][index]
            ids = sorted(second)
            verdict = aggregate_pairwise([second[i] for i in ids], [first[i] for i in ids])
            pairwise.append(
                {
                    "baseline": results[0]["model_version"],
                    "model_version": results[index]["model_version"],
                    "wins": verdict.wins,
                    "ties": verdict.ties,
                    "losses": verdict.losses,
                    "adjusted_win_rate": verdict.adjusted_win_rate,
                    "parse_failures": verdict.parse_failures,
                }
            )
        row.spec = {**row.spec, "pairwise": pairwise}


def _write_inputs(
    work: Path, spec: dict[str, Any], models: list[dict[str, Any]], judge: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The samples (an sft row's last answer is its reference), `spec.json` and `prompts.jsonl`."""
    samples = []
    for r in read_parquet(work / "data" / "data.parquet"):
        if "messages" in r:
            samples.append(
                {"id": r["id"], "prompt": r["messages"][:-1], "reference": r["messages"][-1]["content"]}
            )
        else:
            sample = {"id": r["id"], "prompt": r["prompt"], "reference": r.get("reference") or ""}
            if r.get("references"):
                sample["references"] = list(r["references"])
            if r.get("fields"):
                sample["fields"] = r["fields"]
            samples.append(sample)
    (work / "spec.json").write_text(
        json.dumps({"models": models, "generation": spec["generation"], "judge": judge})
    )
    (work / "prompts.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "id": s["id"],
                    "prompt": s["prompt"],
                    "reference": s["reference"],
                    "question": next(
                        (m["content"] for m in reversed(s["prompt"]) if m["role"] == "user"), ""
                    ),
                },
                ensure_ascii=False,
            )
            + "\n"
            for s in samples
        )
    )
    return samples


async def main() -> None:
    settings = load_settings(EvalWorkerSettings)
    runtime = await open_runtime(
        "eval",
        settings,
        migrations=MIGRATIONS,
        outbox_table=OUTBOX,
        serves_api=False,
        bus_name=f"tuneforge-{settings.worker_name}",
    )
    peers = Peers(
        {"registry": settings.registry_endpoint, "data": settings.data_endpoint},
        api_key=settings.worker_api_key.get_secret_value,
    )
    worker = EvalWorker(settings, runtime.db, runtime.store, runtime.bus, runtime.outbox, peers)
    try:
        await run_until_signalled(worker.stopping, worker.run, grace_seconds=settings.shutdown_grace_seconds)
    finally:
        await peers.close()
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
