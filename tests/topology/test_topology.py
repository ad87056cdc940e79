"""The production topology, for real, on one machine: PostgreSQL, a 3-node NATS JetStream cluster
(streams with 3 replicas), the S3 server, two replicas of every service with clients balancing
across them, and two training workers. The quickstart's whole flow runs on it while one NATS
node, one replica of every service and the worker running a job are killed (SIGKILL) mid-job.

Afterwards: every client call succeeded (retried by the clients where a replica was gone), every
job and evaluation succeeded, and the SQL outboxes agree with the event stream: nothing
unpublished, no event twice, one terminal event per job, one model version per job."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from services.suite.cluster import ClusterSuite
from tests.faults.harness import read_events
from tuneforge import Client, TuneForgeError
from tuneforge.api.evaluations import STATE_NAMES as EVALUATION_STATES
from tuneforge.api.training import STATE_NAMES
from tuneforge.cli.quickstart import FAST, run
from tuneforge.data.v1 import dataset_pb2
from tuneforge.events.v1 import train_events_pb2

PROJECT = "topology"
SERVICES = ("registry", "data", "train", "eval", "serve", "iam")


async def stream_replicas(bus_url: str) -> dict[str, int]:
    """How many copies the cluster keeps of each stream."""
    nc = await nats.connect(servers=bus_url.split(","))
    try:
        js = nc.jetstream()
        replicas = {}
        for stream in ("TUNEFORGE_EVENTS", "TUNEFORGE_TRAIN_QUEUE", "TUNEFORGE_EVAL_QUEUE"):
            info = await js.stream_info(stream)
            replicas[stream] = 1 + len(info.cluster.replicas or []) if info.cluster else 1
        return replicas
    finally:
        await nc.close()


def rpc_calls(metrics_url: str) -> int:
    """RPCs a replica has served (health checks aside), from its /metrics."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode())
        return int(
            sum(
                sample.value
                for family in families
                for sample in family.samples
                if sample.name == "tuneforge_rpc_requests_total" and "Health" not in sample.labels["method"]
            )
        )


class Load:
    """Reads from every service, twice a second, until stopped: counts calls and failures."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        calls = (
            lambda: list(self.client.models.list()),
            lambda: list(self.client.data.list()),
            lambda: list(self.client.train.list()),
            lambda: list(self.client.evals.list()),
            lambda: list(self.client.serve.list()),
            lambda: list(self.client.iam.keys()),
        )
        while not self.stopping.is_set():
            for call in calls:
                try:
                    call()
                except TuneForgeError as error:
                    self.failures.append(f"{error.code}: {error.message}")
                self.calls += 1
            time.sleep(0.5)


@pytest.mark.postgres
@pytest.mark.timeout(1500)
def test_the_production_topology_keeps_every_job_event_and_version_through_kills(
    tmp_path: Path, postgres_url: str
) -> None:
    with ClusterSuite(
        tmp_path / "cluster",
        database_url=postgres_url,
        extra_env={"TUNEFORGE_TRAIN_HEARTBEAT_SECONDS": "1", "TUNEFORGE_TRAIN_ACK_WAIT_SECONDS": "15"},
    ) as suite:
        replicas = asyncio.run(stream_replicas(suite.bus_url))
        assert set(replicas.values()) == {3}, replicas
        outcome: dict[str, Any] = {}
        killed: list[str] = []
        with Client(suite.endpoints, api_key=suite.admin_key, project=PROJECT) as client:
            client.iam.create_project(PROJECT)
            load = Load(client)
            load.thread.start()

            def quickstart() -> None:
                try:
                    outcome["result"] = run(client, settings=FAST, out_dir=tmp_path / "out", follow=False)
                except BaseException as error:  # reported below
                    outcome["error"] = repr(error)

            flow = threading.Thread(target=quickstart, daemon=True)
            flow.start()
            # Mid-job: a job has stored a step on some worker.
            deadline = time.monotonic() + 600
            victim = None
            while victim is None and time.monotonic() < deadline and flow.is_alive():
                running = [
                    j
                    for j in client.train.list()
                    if STATE_NAMES[j.state] == "running" and j.current_step >= 2
                ]
                if running:
                    victim = running[0]
                time.sleep(0.5)
            assert victim is not None, f"no job ran ({outcome})"
            worker = victim.worker.rsplit("/", 1)[-1]
            # Clients and peers balance: both replicas of every service have served calls.
            served = {
                f"{name}-{index}": rpc_calls(suite.metrics_url(f"{name}-{index}"))
                for name in SERVICES
                for index in (0, 1)
            }
            assert all(served.values()), served
            suite.processes["nats-0"].kill()
            killed.append("nats-0")
            for name in SERVICES:
                suite.processes[f"{name}-1"].kill()
                killed.append(f"{name}-1")
            suite.processes[worker].kill()
            killed.append(worker)
            flow.join(timeout=1200)
            load.stopping.set()
            load.thread.join(timeout=30)
            assert "error" not in outcome and "result" in outcome, outcome

            jobs = list(client.train.list())
            states = Counter(STATE_NAMES[j.state] for j in jobs)
            resumed = client.train.get(victim.name)
            evaluations = list(client.evals.list())
            evaluation_states = Counter(EVALUATION_STATES[e.state] for e in evaluations)
            versions_per_job = {
                j.name: len(list(client.models.list_versions(j.output_model.rsplit("/", 1)[-1])))
                for j in jobs
            }
            ready = [
                v.name
                for d in client.data.list()
                for v in client.data.list_versions(d.name.rsplit("/", 1)[-1])
                if v.state == dataset_pb2.DATASET_VERSION_STATE_READY
            ]
        # The relays publish what the last transactions wrote; one that failed while its NATS node
        # was down retries after its backoff (up to 30 s), so a row still there after 45 s is lost.
        engine = create_engine(postgres_url)
        deadline = time.monotonic() + 45
        while True:
            with engine.connect() as conn:
                unpublished = sum(
                    conn.execute(text(f"select count(*) from {s}.outbox")).scalar() for s in SERVICES
                )
            if not unpublished or time.monotonic() > deadline:
                break
            time.sleep(1)
        engine.dispose()
        events = asyncio.run(read_events(suite.bus_url))

    ids = Counter(e.id for e in events)
    duplicated_events = sum(n - 1 for n in ids.values() if n > 1)
    mine = [e for e in events if e.project == PROJECT]
    by_kind = Counter((e.type, e.subject) for e in mine)
    succeeded_events = Counter()
    for e in mine:
        if e.type == "tuneforge.train.job.state_changed":
            payload = train_events_pb2.TrainingJobEvent()
            e.data.Unpack(payload)
            if STATE_NAMES.get(payload.training_job.state) == "succeeded":
                succeeded_events[e.subject] += 1
    counts = {
        "killed": killed,
        "rpcs_served_before_the_kills": served,
        "client_calls": load.calls,
        "client_failures": len(load.failures),
        "jobs": dict(states),
        "resumed_job": {"name": resumed.name, "attempt": resumed.attempt, "worker": resumed.worker},
        "evaluations": dict(evaluation_states),
        "ready_dataset_versions": len(ready),
        "events_in_stream": len(events),
        "duplicated_events": duplicated_events,
        "unpublished_outbox_rows": unpublished,
    }
    print("topology:", json.dumps(counts))
    assert not load.failures, load.failures[:10]
    assert set(states) == {"succeeded"} and len(jobs) == 2, states
    assert resumed.worker.rsplit("/", 1)[-1] != worker, "the killed worker's job finished elsewhere"
    assert set(evaluation_states) == {"succeeded"}, evaluation_states
    assert set(versions_per_job.values()) == {1}, versions_per_job
    assert duplicated_events == 0 and unpublished == 0
    assert {name: succeeded_events[name] for name in versions_per_job} == dict.fromkeys(versions_per_job, 1)
    assert all(by_kind[("tuneforge.data.dataset_version.ready", name)] == 1 for name in ready), [
        (name, by_kind[("tuneforge.data.dataset_version.ready", name)]) for name in ready
    ]
