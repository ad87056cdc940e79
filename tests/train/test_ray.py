"""A job of several nodes on a real Ray cluster: two Ray nodes started on loopback by the test, a
worker that hands the job to them (Ray Train's TorchTrainer, gloo), metrics reported while it
runs, and a Ray training worker killed mid-job (FailureConfig restarts the group from the newest
checkpoint)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.suite.suite import LocalSuite
from tests.train.test_distributed import DDP_DATA, DDP_JOB, DDP_LORA, wait_for
from tuneforge import Client
from tuneforge.api.training import STATE_NAMES

RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[dict[str, str]]:
    """A head node and a second node, one CPU each, on loopback, with token authentication; the
    settings a worker needs to reach it. Stopped afterwards."""
    temp = tempfile.mkdtemp(prefix="tfray-", dir="/tmp")  # Ray's socket paths must stay short
    address = f"127.0.0.1:{_free_port()}"
    access = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **access}
    common = ["--num-cpus=1", "--object-store-memory=200000000", "--disable-usage-stats"]
    head = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={address.rsplit(':', 1)[1]}"]
    started = subprocess.run(
        [*head, "--include-dashboard=false", f"--temp-dir={temp}", *common],
        env=env,
        capture_output=True,
        text=True,
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        joined = subprocess.run(
            [RAY, "start", f"--address={address}", *common], env=env, capture_output=True, text=True
        )
        assert joined.returncode == 0, joined.stdout + joined.stderr
        yield {"TUNEFORGE_TRAIN_RAY_ADDRESS": address, **access}
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)


def ray_train_workers(folder: Path) -> dict[int, int]:
    """{rank: pid} of the job's Ray Train workers, as the driver logged them in the job folder."""
    records = [json.loads(line) for line in (folder / "progress.jsonl").read_text().splitlines()]
    return {r["rank"]: r["pid"] for r in records if r["type"] == "ray_worker"}


def test_a_two_node_job_runs_on_ray_reports_live_and_survives_a_killed_ray_worker(
    client: Client,
    base_model: str,
    math_data: None,
    suite: LocalSuite,
    ray_cluster: dict[str, str],
    tmp_path: Path,
) -> None:
    worker = suite.start_worker(8, own=ray_cluster)
    try:
        listed = {w.name: w for w in client.train.workers()}["workers/worker-8"]
        assert "ray" in listed.backends and listed.ray_nodes == 2 and listed.ray_accelerators_per_node == 1
        assert listed.versions["ray"]
        job = client.train.create(
            base_model=base_model,
            training_data=DDP_DATA,
            hyperparameters=DDP_JOB,
            lora=DDP_LORA,
            resources={"nodes": 2, "accelerators_per_node": 1, "accelerator_kind": "cpu"},
        )
        wait_for(lambda: client.train.checkpoints(job.name), 180, "the first checkpoint from Ray")
        live = client.train.get(job.name)
        assert STATE_NAMES[live.state] == "running" and live.worker == "worker-8"
        assert client.train.metrics(job.name), "metric points arrive while the job runs"
        ranks = ray_train_workers(suite.data_dir / "work" / "worker-8" / job.uid)
        assert set(ranks) == {0, 1}, ranks
        os.kill(ranks[1], signal.SIGKILL)
        done = client.train.wait(job.name, timeout=300)
        assert STATE_NAMES[done.state] == "succeeded", done.error
        assert done.restarts == 1 and done.attempt == 1, (done.restarts, done.attempt)
        steps = [p.step for p in client.train.metrics(job.name) if not p.has_validation_loss]
        assert steps == list(range(1, done.total_steps + 1)), "every step once"
        tuned = tmp_path / "tuned"
        client.models.download(done.final_model_version, tuned)
        assert (tuned / "adapter_model.safetensors").exists()
    finally:
        worker.stop()
