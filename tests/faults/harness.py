"""Fault injection, with real processes: a steady load of uploads, training jobs, evaluations and
serving calls while, at random (seeded) moments, a training worker, an evaluation worker, the data
worker, each service, the NATS server and the S3 server are killed with SIGKILL (and started again;
the S3 server stays down a while). Afterwards every promise is checked and counted:

- every job and evaluation ended SUCCEEDED; none lost, stuck, or run twice to completion (each job
  registers its model once, and stores each step once);
- every upload a client saw succeed made exactly one READY version; no version half-visible
  (PROCESSING forever, or READY without its data);
- every event was published exactly once: each service's outbox is empty, no event id is twice in
  the stream, and each stored change has its one event;
- clients saw only retryable errors (UNAVAILABLE, DEADLINE_EXCEEDED, and 429/503 from the OpenAI
  API) during the outages, never INVALID_ARGUMENT or INTERNAL.

    python -m tests.faults.harness --minutes 10 --seed 3     # a soak for operators (prints JSON)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

from services.suite.suite import LocalSuite
from tuneforge import Client, TuneForgeError
from tuneforge.api.evaluations import STATE_NAMES as EVALUATION_STATES
from tuneforge.api.training import STATE_NAMES
from tuneforge.data.v1 import dataset_pb2
from tuneforge.events.v1 import event_pb2, train_events_pb2

PROJECT = "faults"
RETRYABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
SUITE_ENV = {
    # Work of a killed worker goes to its successor within seconds.
    "TUNEFORGE_TRAIN_ACK_WAIT_SECONDS": "6",
    "TUNEFORGE_EVAL_ACK_WAIT_SECONDS": "6",
    "TUNEFORGE_DATA_ACK_WAIT_SECONDS": "6",
    "TUNEFORGE_TRAIN_HEARTBEAT_SECONDS": "1",
    "TUNEFORGE_SERVE_WORKER_CAPACITY": "4",
}
SERVICES = ("registry", "data", "train", "eval", "serve", "iam")
# Services whose outbox tables the check reads (iam has one too).
OUTBOXES = ("registry", "data", "train", "eval", "serve", "iam")


@dataclass
class Plan:
    """How big a run is: the load, and the faults."""

    seconds: float = 150.0
    jobs: int = 2
    evaluations: int = 2
    upload_every: float = 3.0
    s3_down_seconds: float = 10.0
    faults: int = 14
    seed: int = 0


@dataclass
class Tally:
    faults: list[str] = field(default_factory=list)
    client_errors: Counter[str] = field(default_factory=Counter)
    bad_errors: list[str] = field(default_factory=list)
    uploads: dict[str, str] = field(default_factory=dict)  # request id -> version name
    calls: Counter[str] = field(default_factory=Counter)
    doing: dict[str, str] = field(default_factory=dict)  # load thread -> what it is waiting on
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, where: str, code: str, message: str) -> None:
        with self.lock:
            self.client_errors[code] += 1
            if code not in RETRYABLE:
                self.bad_errors.append(f"{where}: {code}: {message[:200]}")


def retried(tally: Tally, where: str, call: Callable[[], Any], *, until: float) -> Any:
    """`call` until it succeeds (a client retrying through an outage), counting each error."""
    tally.doing[threading.current_thread().name] = f"{where} since {time.strftime('%H:%M:%S')}"
    while True:
        try:
            return call()
        except TuneForgeError as error:
            tally.error(where, error.code, error.message)
            if error.code not in RETRYABLE or time.monotonic() > until:
                return None
            time.sleep(0.5)


class FaultRun:
    def __init__(self, root: Path, tiny_model: Path, plan: Plan) -> None:
        self.root = root
        self.tiny_model = tiny_model
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.tally = Tally()
        self.suite = LocalSuite(root / "suite", workers=2, extra_env=SUITE_ENV)
        self.stop = threading.Event()
        self.jobs: list[str] = []
        self.evaluations: list[str] = []

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        with self.suite:
            client = self._client()
            base, eval_version = self._prepare(client)
            deadline = time.monotonic() + self.plan.seconds
            threads = [
                threading.Thread(target=self._uploads, args=(deadline,), daemon=True),
                threading.Thread(target=self._serving_calls, args=(deadline,), daemon=True),
                threading.Thread(
                    target=self._training_and_evaluation, args=(base, eval_version, deadline), daemon=True
                ),
            ]
            for thread in threads:
                thread.start()
            self._inject(deadline)
            for thread in threads:
                thread.join(timeout=max(1.0, deadline - time.monotonic() + 180))
            stuck = [
                f"{t.name} stuck in {self.tally.doing.get(t.name, '?')}" for t in threads if t.is_alive()
            ]
            loaded = time.monotonic() - started
            report = self._check(client)
            report["problems"] = stuck + report["problems"]
            report["lost"] += len(stuck)
            return {
                **report,
                "seconds_under_load": round(loaded),
                "seconds_in_all": round(time.monotonic() - started),
            }

    def _client(self) -> Client:
        return Client(self.suite.endpoints, api_key=self.suite.admin_key, project=PROJECT)

    def _prepare(self, client: Client) -> tuple[str, str]:
        client.models.create("tiny")
        base = client.models.upload("tiny", self.tiny_model).name
        client.data.install_preset("math-grading")
        rows = self.root / "eval.jsonl"
        rows.write_text(
            "".join(
                json.dumps({"prompt": [{"role": "user", "content": f"{i}+{i}=?"}], "reference": str(2 * i)})
                + "\n"
                for i in range(4)
            )
        )
        client.data.create("evalset", "eval")
        eval_version = client.data.upload("evalset", rows).name
        client.data.create("uploads", "text")
        client.serve.create("tiny", base, max_tokens=4, temperature=0.0)
        client.serve.wait("tiny", timeout=180)
        return base, eval_version

    # -- load ----------------------------------------------------------------------------------

    def _uploads(self, deadline: float) -> None:
        client = self._client()
        path = self.root / "upload.jsonl"
        path.write_text("".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(3)))
        while time.monotonic() < deadline:
            request_id = str(uuid.uuid4())
            version = retried(
                self.tally,
                "upload",
                lambda request_id=request_id: client.data.upload("uploads", path, request_id=request_id),
                until=deadline + 120,
            )
            if version is not None:
                with self.tally.lock:
                    self.tally.uploads[request_id] = version.name
            time.sleep(self.plan.upload_every)

    def _serving_calls(self, deadline: float) -> None:
        url = self.suite.endpoints["openai"] + "/chat/completions"
        headers = {"Authorization": f"Bearer {self.suite.admin_key}", "OpenAI-Project": PROJECT}
        body = {"model": "tiny", "messages": [{"role": "user", "content": "1+1=?"}], "max_tokens": 4}
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < deadline:
                try:
                    response = http.post(url, json=body, headers=headers)
                    code = str(response.status_code)
                except httpx.TransportError:
                    code = "no-connection"
                self.tally.calls[code] += 1
                if code not in ("200", "429", "503", "no-connection"):
                    with self.tally.lock:
                        self.tally.bad_errors.append(f"chat: HTTP {code}")
                time.sleep(0.3)

    def _training_and_evaluation(self, base: str, eval_version: str, deadline: float) -> None:
        client = self._client()
        gap = self.plan.seconds / max(1, self.plan.jobs + self.plan.evaluations)
        for i in range(max(self.plan.jobs, self.plan.evaluations)):
            if i < self.plan.jobs:
                job = retried(
                    self.tally,
                    "create job",
                    lambda i=i: client.train.create(
                        base_model=base,
                        training_data={"math-grading-train": 0.1},
                        job_id=f"job-{i}",
                        hyperparameters={
                            "epochs": 1,
                            "batch_size": 2,
                            "learning_rate": 1e-3,
                            "checkpoint_interval_steps": 2,
                            "max_sequence_length": 256,
                        },
                        request_id=f"faults-job-{i}",
                    ),
                    until=deadline + 120,
                )
                if job is not None:
                    self.jobs.append(job.name)
            if i < self.plan.evaluations:
                evaluation = retried(
                    self.tally,
                    "create evaluation",
                    lambda i=i: client.evals.create(
                        [base], eval_version, metrics=["bleu4"], evaluation_id=f"eval-{i}", max_new_tokens=4
                    ),
                    until=deadline + 120,
                )
                if evaluation is not None:
                    self.evaluations.append(evaluation.name)
            self.stop.wait(gap)

    # -- faults --------------------------------------------------------------------------------

    def _targets(self) -> list[str]:
        workers = [
            "worker-0",
            "worker-1",
            "eval-worker-0",
            "data-worker-0",
            "serve-worker-0",
            "registry-worker-0",
        ]
        return [*workers, *SERVICES, "nats", "s3"]

    def _inject(self, deadline: float) -> None:
        targets = self._targets()
        # Every kind of fault at least once (in a seeded order), then random ones.
        order = self.rng.sample(targets, len(targets))
        order += [self.rng.choice(targets) for _ in range(max(0, self.plan.faults - len(order)))]
        time.sleep(self.plan.seconds * 0.05)
        for i, target in enumerate(order):
            self._fault(target)
            # What is left of 80% of the run, shared among the faults still to come.
            left = deadline - self.plan.seconds * 0.2 - time.monotonic()
            time.sleep(max(0.5, self.rng.uniform(0.5, 1.5) * left / max(1, len(order) - i - 1)))

    def _fault(self, target: str) -> None:
        suite = self.suite
        started = time.monotonic()
        suite.processes[target].kill()
        if target == "s3":
            time.sleep(self.plan.s3_down_seconds)
        elif target != "nats":
            time.sleep(self.rng.uniform(0.5, 2.0))
        if target in ("nats", "s3"):
            suite.processes[target].start()
            time.sleep(1.5)
        elif target in SERVICES:
            suite.start_service(target)
        else:
            kind, _, index = target.rpartition("-")
            suite.start_worker(int(index), kind="train" if kind == "worker" else kind.removesuffix("-worker"))
        self.tally.faults.append(f"{target} ({time.monotonic() - started:.1f} s down)")

    # -- the checks ----------------------------------------------------------------------------

    def _check(self, client: Client) -> dict[str, Any]:
        problems: list[str] = []
        lost = duplicated = corrupt = 0
        jobs = [client.train.wait(name, timeout=300) for name in self.jobs]
        for job in jobs:
            state = STATE_NAMES[job.state]
            if state != "succeeded":
                lost += 1
                problems.append(f"{job.name} ended {state}: {job.error}")
                continue
            steps = [p.step for p in client.train.metrics(job.name) if not p.has_validation_loss]
            if steps != list(range(1, job.total_steps + 1)):
                duplicated += 1
                problems.append(
                    f"{job.name} stored steps {Counter(steps).most_common(3)} of {job.total_steps}"
                )
            versions = list(client.models.list_versions(job.output_model.rsplit("/", 1)[-1]))
            if len(versions) != 1:
                duplicated += 1
                problems.append(f"{job.name} registered {len(versions)} versions")
        evaluations = [client.evals.wait(name, timeout=300) for name in self.evaluations]
        for evaluation in evaluations:
            if EVALUATION_STATES[evaluation.state] != "succeeded":
                lost += 1
                problems.append(f"{evaluation.name} ended {EVALUATION_STATES[evaluation.state]}")
        versions = self._settled_versions(client)
        for name in set(self.tally.uploads.values()):
            version = versions.get(name)
            if (
                version is None
                or version.state != dataset_pb2.DATASET_VERSION_STATE_READY
                or version.row_count != 3
            ):
                corrupt += 1
                problems.append(f"upload {name}: {version.state if version else 'missing'}")
        made_by_uploads = [
            v for v in versions.values() if v.name.startswith(f"projects/{PROJECT}/datasets/uploads/")
        ]
        if len(made_by_uploads) != len(set(self.tally.uploads.values())):
            duplicated += abs(len(made_by_uploads) - len(set(self.tally.uploads.values())))
            problems.append(f"{len(made_by_uploads)} upload versions for {len(self.tally.uploads)} uploads")
        stuck = [v.name for v in versions.values() if v.state == dataset_pb2.DATASET_VERSION_STATE_PROCESSING]
        if stuck:
            corrupt += len(stuck)
            problems.append(f"stuck PROCESSING: {stuck[:5]}")
        events = self._event_check(jobs, versions, problems)
        duplicated += events["duplicated_events"]
        lost += events["missing_events"] + events["unpublished_outbox_rows"]
        problems += [f"client error: {e}" for e in self.tally.bad_errors[:20]]
        return {
            "seed": self.plan.seed,
            "faults_injected": len(self.tally.faults),
            "faults": self.tally.faults,
            "jobs": len(jobs),
            "evaluations": len(evaluations),
            "uploads": len(self.tally.uploads),
            "serving_calls": dict(self.tally.calls),
            "client_errors": dict(self.tally.client_errors),
            **events,
            "lost": lost,
            "duplicated": duplicated,
            "corrupt": corrupt,
            "bad_client_errors": len(self.tally.bad_errors),
            "problems": problems,
        }

    def _settled_versions(self, client: Client) -> dict[str, dataset_pb2.DatasetVersion]:
        """Every dataset version of the project, once none is PROCESSING (or after a minute)."""
        deadline = time.monotonic() + 60
        while True:
            versions = {
                v.name: v
                for d in client.data.list()
                for v in client.data.list_versions(d.name.rsplit("/", 1)[-1])
            }
            processing = any(
                v.state == dataset_pb2.DATASET_VERSION_STATE_PROCESSING for v in versions.values()
            )
            if not processing or time.monotonic() > deadline:
                return versions
            time.sleep(1)

    def _event_check(self, jobs: list[Any], versions: dict[str, Any], problems: list[str]) -> dict[str, int]:
        # The relays publish what the last transactions wrote; one that failed during an outage
        # retries after its backoff (up to 30 s), so a row still there after 45 s is lost.
        deadline = time.monotonic() + 45
        while True:
            unpublished = 0
            for service in OUTBOXES:
                database = self.suite.data_dir / "db" / f"{service}.db"
                with sqlite3.connect(database) as conn:
                    unpublished += conn.execute("select count(*) from outbox").fetchone()[0]
            if not unpublished or time.monotonic() > deadline:
                break
            time.sleep(1)
        events = asyncio.run(self._read_events())
        ids = Counter(e.id for e in events)
        duplicated = sum(n - 1 for n in ids.values() if n > 1)
        mine = [e for e in events if e.project == PROJECT]
        by_kind = Counter((e.type, e.subject) for e in mine)
        missing = 0
        for name, version in versions.items():
            if version.state == dataset_pb2.DATASET_VERSION_STATE_READY:
                count = by_kind[("tuneforge.data.dataset_version.ready", name)]
                if count != 1:
                    missing += count == 0
                    duplicated += max(0, count - 1)
                    problems.append(f"{name}: {count} ready events")
        for job in jobs:
            succeeded = 0
            for e in mine:
                if e.type == "tuneforge.train.job.state_changed" and e.subject == job.name:
                    payload = train_events_pb2.TrainingJobEvent()
                    e.data.Unpack(payload)
                    succeeded += STATE_NAMES.get(payload.training_job.state) == "succeeded"
            if succeeded != 1:
                missing += succeeded == 0
                duplicated += max(0, succeeded - 1)
                problems.append(f"{job.name}: {succeeded} succeeded events")
        if unpublished:
            problems.append(f"{unpublished} outbox rows were never published")
        return {
            "events_in_stream": len(events),
            "duplicated_events": duplicated,
            "missing_events": missing,
            "unpublished_outbox_rows": unpublished,
        }

    async def _read_events(self) -> list[event_pb2.Event]:
        return await read_events(self.suite.bus_url)


async def read_events(bus_url: str) -> list[event_pb2.Event]:
    """Every event in TUNEFORGE_EVENTS (`bus_url`: one NATS URL, or a cluster's, comma-separated)."""
    import nats

    nc = await nats.connect(servers=bus_url.split(","))
    try:
        js = nc.jetstream()
        total = (await js.stream_info("TUNEFORGE_EVENTS")).state.messages
        subscription = await js.subscribe("tuneforge.>", stream="TUNEFORGE_EVENTS", ordered_consumer=True)
        out = []
        while len(out) < total:
            message = await subscription.next_msg(timeout=10)
            event = event_pb2.Event()
            event.ParseFromString(message.data)
            out.append(event)
        await subscription.unsubscribe()
        return out
    finally:
        await nc.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--s3-down-seconds", type=float, default=30)
    args = parser.parse_args()
    from services.data.presets import project_texts
    from services.train.tiny import build_tiny_model

    seconds = args.minutes * 60
    plan = Plan(
        seconds=seconds,
        jobs=max(2, int(seconds // 60)),
        evaluations=max(2, int(seconds // 90)),
        s3_down_seconds=args.s3_down_seconds,
        faults=max(14, int(seconds // 15)),
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="tuneforge-faults-") as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "tiny", project_texts())
        report = FaultRun(root, model, plan).run()
    print(json.dumps(report, indent=1))
    return (
        1 if report["lost"] or report["duplicated"] or report["corrupt"] or report["bad_client_errors"] else 0
    )


if __name__ == "__main__":
    sys.exit(main())
