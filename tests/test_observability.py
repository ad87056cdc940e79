"""What operators see: Prometheus /metrics of a service and a worker scraped during a real job,
and one trace that runs from a CLI command through the train service, the queue and the worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from services.suite.suite import LocalSuite
from tuneforge import Client
from tuneforge.train.v1.training_job_pb2 import TRAINING_JOB_STATE_RUNNING as RUNNING
from tuneforge.train.v1.training_job_pb2 import TRAINING_JOB_STATE_SUCCEEDED as SUCCEEDED


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample on a /metrics page, by sample name, parsed by prometheus_client's parser."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


def spans_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_metrics_and_one_trace_from_the_cli_to_the_worker(tmp_path: Path, tiny_model_dir: Path) -> None:
    traces = tmp_path / "spans.jsonl"
    with LocalSuite(
        tmp_path / "suite",
        services=("registry", "data", "train"),
        extra_env={
            "TUNEFORGE_TRACE_FILE": str(traces),
            "TUNEFORGE_TRAIN_HEARTBEAT_SECONDS": "1",
            "TUNEFORGE_METRICS_REFRESH_SECONDS": "1",
        },
    ) as suite:
        with Client(suite.endpoints, api_key=suite.admin_key, project="watched") as client:
            client.models.create("tiny")
            client.models.upload("tiny", tiny_model_dir)
            client.data.install_preset("math-grading")
        cli = subprocess.run(
            [sys.executable, "-m", "tuneforge", "--json", "train", "create", "--base-model", "tiny/1",
             "--data", "math-grading-train=0.3", "--job-id", "traced", "--hp", "epochs=2",
             "--hp", "batch_size=2"],
            env={**os.environ, "TUNEFORGE_HOME": str(suite.data_dir), "TUNEFORGE_API_KEY": suite.admin_key,
                 "TUNEFORGE_PROJECT": "watched", "TUNEFORGE_TRACE_FILE": str(traces)},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr

        # During the job: the worker is busy with a train-queue message, the service counts the RPC.
        with Client(suite.endpoints, api_key=suite.admin_key, project="watched") as client:
            deadline = time.monotonic() + 120
            while True:
                job = client.train.get("traced")
                worker = scrape(suite.metrics_url("worker-0"))
                busy = [v for labels, v in worker["tuneforge_worker_busy"] if "TRAIN" in labels["stream"]]
                if busy == [1.0] or job.state == SUCCEEDED or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert busy == [1.0], f"the worker never reported the job ({job.state})"
            # The service reads its gauges every second here: while the job runs, its queue message is
            # held (taken, not yet acknowledged) and the job counts as running.
            deadline = time.monotonic() + 60
            while True:
                service = scrape(suite.metrics_url("train"))
                queue = {labels["subject"]: v for labels, v in service["tuneforge_queue_messages"]}
                states = {labels["state"]: v for labels, v in service["tuneforge_train_jobs"] if v}
                seen = queue.get("tuneforge.train-queue.normal") == 1.0 and states == {"running": 1.0}
                if seen or client.train.get("traced").state != RUNNING or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert seen, (queue, states)
            created = [
                (labels, v)
                for labels, v in service["tuneforge_rpc_requests_total"]
                if labels["method"].endswith("/CreateTrainingJob")
            ]
            assert created == [
                ({"method": "/tuneforge.train.v1.TrainService/CreateTrainingJob", "code": "OK"}, 1.0)
            ]
            assert any(
                labels["method"].endswith("/CreateTrainingJob")
                for labels, _ in service["tuneforge_rpc_duration_seconds_count"]
            )
            assert service["tuneforge_train_workers"] and service["tuneforge_train_worker_accelerators"]
            client.train.wait("traced", timeout=300)

        # The worker counts the message once its handler returns (just after the job's end is stored).
        deadline = time.monotonic() + 20
        while True:
            worker = scrape(suite.metrics_url("worker-0"))
            handled = {labels["outcome"]: v for labels, v in worker["tuneforge_worker_tasks_total"]}
            if handled or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert handled == {"handled": 1.0}
        assert "process_cpu_seconds_total" in worker  # the process collector rides along

    # One trace: the CLI's span, the service's CreateTrainingJob, the queue message, the worker.
    spans = spans_of(traces)
    roots = [s for s in spans if s["name"] == "tuneforge train create" and s["service"] == "tuneforge-cli"]
    assert len(roots) == 1, [s["name"] for s in spans][:20]
    trace = [s for s in spans if s["trace_id"] == roots[0]["trace_id"]]
    by_id = {s["span_id"]: s for s in trace}
    server = next(
        s for s in trace if s["name"].endswith("/CreateTrainingJob") and s["service"] == "tuneforge-train"
    )
    assert server["kind"] == "SERVER" and server["parent_span_id"] == roots[0]["span_id"]
    publish = next(s for s in trace if s["name"] == "publish tuneforge.train-queue")
    assert publish["kind"] == "PRODUCER" and publish["parent_span_id"] == server["span_id"]
    process = next(s for s in trace if s["name"] == "process tuneforge.train-queue.normal")
    assert process["service"] == "tuneforge-train-worker" and process["parent_span_id"] == publish["span_id"]
    # What the worker asked of the services while training belongs to the same trace.
    nested = [s for s in trace if s["kind"] == "SERVER" and by_id.get(s["parent_span_id"]) is not None]
    assert len({s["service"] for s in nested}) >= 2, sorted({s["name"] for s in nested})
    # Log lines carry the trace id.
    train_log = (suite.data_dir / "logs" / "train.log").read_text()
    assert roots[0]["trace_id"] in train_log
