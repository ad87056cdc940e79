"""Jobs past one process: resources on the job, workers' heartbeats and placement, torchrun (gloo
DDP on CPU) through the real worker, a killed process resumed from the newest checkpoint, and
QLoRA refused or held back where no CUDA worker exists."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from services.suite.suite import LocalSuite
from tests.registry.test_registry_api import expect_error
from tests.train.test_training import generate, train_losses
from tuneforge import Client
from tuneforge.api.training import STATE_NAMES

# Long enough (72 steps) that a process can be killed between two checkpoints. 48 rows: every batch
# is whole (DDP pads a short last batch with rows from the start, which changes its gradient), and
# no LoRA dropout (its random masks differ between 1 and 2 processes): the runs must then agree to
# float rounding.
DDP_DATA = {"math-grading-train": 0.16}
DDP_JOB = {"learning_rate": 2e-3, "batch_size": 8, "epochs": 12, "seed": 7, "checkpoint_interval_steps": 10}
DDP_LORA = {"dropout": 0.0}
TOLERANCE = 1e-4  # the largest relative difference of a step's loss between 2 processes and 1


def ranks_of(job_uid: str) -> dict[int, int]:
    """{rank: pid} of the job's torchrun processes on this host."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if b"services.train.runner" not in cmdline or job_uid.encode() not in cmdline:
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\x00")
        except OSError:
            continue
        rank = next((v for v in environ if v.startswith(b"RANK=")), None)
        if rank is not None:
            found[int(rank.removeprefix(b"RANK="))] = int(entry)
    return found


def wait_for(condition, timeout: float = 120, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_process_ddp_matches_one_process_and_survives_a_killed_rank(
    client: Client, base_model: str, math_data: None, tiny_model_dir: Path, tmp_path: Path
) -> None:
    one = client.train.create(
        base_model=base_model, training_data=DDP_DATA, hyperparameters=DDP_JOB, lora=DDP_LORA
    )
    two = client.train.create(
        base_model=base_model,
        training_data=DDP_DATA,
        hyperparameters=DDP_JOB,
        lora=DDP_LORA,
        resources={"accelerators_per_node": 2, "accelerator_kind": "cpu"},
    )
    assert two.total_steps == one.total_steps >= 60, "the batch is the step's whole batch, on any count"
    assert two.resources.accelerators_per_node == 2
    assert STATE_NAMES[client.train.wait(one.name, timeout=300).state] == "succeeded"

    # Kill the second process once a checkpoint is stored: the worker restarts both from it.
    wait_for(lambda: client.train.checkpoints(two.name), what="the first checkpoint")
    ranks = ranks_of(two.uid)
    assert set(ranks) == {0, 1}, f"two torchrun processes expected, found {ranks}"
    killed_at = client.train.get(two.name).current_step
    os.kill(ranks[1], signal.SIGKILL)
    done = client.train.wait(two.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    assert killed_at < done.total_steps, "the process was killed before the job ended"
    assert done.restarts == 1 and done.attempt == 1, (done.restarts, done.attempt)
    assert done.worker == "worker-0"

    points = [p for p in client.train.metrics(two.name) if not p.has_validation_loss]
    assert [p.step for p in points] == list(range(1, done.total_steps + 1)), "every step once"
    single = [p for p in client.train.metrics(one.name) if not p.has_validation_loss]
    # Each step names its whole batch (both processes' shares), in the 1-process run's order.
    assert all(p.sample_ids for p in points)
    pairs = zip(points, single, strict=True)
    mismatched = [(p.step, p.sample_ids, q.sample_ids) for p, q in pairs if p.sample_ids != q.sample_ids]
    assert not mismatched, mismatched[:3]
    losses_one, losses_two = train_losses(client, one.name), [p.loss for p in points]
    worst = max(abs(a - b) / a for a, b in zip(losses_one, losses_two, strict=True))
    print(f"2 processes vs 1: largest relative loss difference {worst:.2e} over {len(points)} steps")
    assert worst < TOLERANCE, worst

    tuned = tmp_path / "tuned"
    client.models.download(done.final_model_version, tuned)
    assert (tuned / "adapter_model.safetensors").exists()
    assert isinstance(generate(tuned, tiny_model_dir), str)


def test_a_job_waits_for_a_worker_that_has_its_devices_and_runs_there(
    client: Client, base_model: str, math_data: None, suite: LocalSuite, keys, project: str
) -> None:
    job = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 0.1},
        hyperparameters={"batch_size": 4, "epochs": 1},
        resources={"accelerators_per_node": 4, "accelerator_kind": "cpu"},
    )
    wait_for(lambda: client.train.get(job.name).waiting_reason, 30, "a waiting reason")
    waiting = client.train.get(job.name)
    assert STATE_NAMES[waiting.state] == "queued"
    assert "no live worker with 4 cpu devices" in waiting.waiting_reason, waiting.waiting_reason
    assert "worker-0: 2 cpu" in waiting.waiting_reason
    time.sleep(3)  # offered to worker-0 meanwhile, which handed it back
    assert STATE_NAMES[client.train.get(job.name).state] == "queued"

    worker = suite.start_worker(7, own={"TUNEFORGE_TRAIN_CPU_DEVICES": "4"})
    try:
        wait_for(lambda: client.train.get(job.name).worker == "worker-7", 60, "worker-7 to take the job")
        mine = {w.name: w for w in client.train.workers()}
        assert mine["workers/worker-7"].accelerators == 4 and "torchrun" in mine["workers/worker-7"].backends
        _, token = keys.create("someone-else", "member", "another team")
        with Client(suite.endpoints, api_key=token, project="someone-else") as other:
            theirs = {w.name: w for w in other.train.workers()}
        if mine["workers/worker-7"].busy:
            assert mine["workers/worker-7"].current_job == job.name
            assert theirs["workers/worker-7"].current_job == "", "another project's job is not named"
        done = client.train.wait(job.name, timeout=300)
        assert STATE_NAMES[done.state] == "succeeded", done.error
        assert done.worker == "worker-7" and not done.waiting_reason
    finally:
        worker.stop()
    wait_for(
        lambda: "workers/worker-7" not in {w.name for w in client.train.workers()}, 30, "worker-7 to leave"
    )


def test_resources_and_qlora_are_checked_and_qlora_waits_for_cuda(
    client: Client, base_model: str, math_data: None
) -> None:
    data = {"math-grading-train": 0.1}
    error = expect_error(
        "INVALID_ARGUMENT",
        client.train.create,
        base_model=base_model,
        training_data=data,
        tuning="qlora",
        hyperparameters={"batch_size": 6},
        resources={"accelerator_kind": "cpu", "accelerators_per_node": 4, "nodes": 0},
    )
    fields = {v.field: v.description for v in error.violations}
    assert "qlora runs on cuda only" in fields["training_job.resources.accelerator_kind"]
    assert "does not divide evenly" in fields["training_job.hyperparameters.batch_size"]
    error = expect_error(
        "INVALID_ARGUMENT",
        client.train.create,
        base_model=base_model,
        training_data=data,
        resources={"accelerator_kind": "tpu", "accelerators_per_node": 100, "accelerator_memory_bytes": -1},
    )
    assert {v.field for v in error.violations} == {
        "training_job.resources.accelerator_kind",
        "training_job.resources.accelerators_per_node",
        "training_job.resources.accelerator_memory_bytes",
    }
    error = expect_error(
        "INVALID_ARGUMENT",
        client.train.create,
        base_model=base_model,
        training_data=data,
        tuning="qlora",
        lora={"rank": 2000},
    )
    assert {v.field for v in error.violations} == {"training_job.lora.rank"}

    job = client.train.create(base_model=base_model, training_data=data, tuning="qlora")
    assert job.tuning == "qlora" and job.resources.accelerator_kind == "cuda"
    wait_for(lambda: client.train.get(job.name).waiting_reason, 30, "a waiting reason")
    reason = client.train.get(job.name).waiting_reason
    assert "no live worker with 1 cuda device" in reason and "qlora needs CUDA" in reason, reason
    listed = next(j for j in client.train.list() if j.name == job.name)
    assert listed.waiting_reason == reason
    client.train.cancel(job.name)
    assert STATE_NAMES[client.train.get(job.name).state] == "cancelled"


def test_a_several_node_job_waits_for_a_ray_cluster(client: Client, base_model: str, math_data: None) -> None:
    nodes = 2
    job = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 0.1},
        hyperparameters={"batch_size": 4},
        resources={"nodes": nodes, "accelerators_per_node": 1},
    )
    wait_for(lambda: client.train.get(job.name).waiting_reason, 30, "a waiting reason")
    reason = client.train.get(job.name).waiting_reason
    assert f"no live worker with {nodes} nodes of 1 device" in reason, reason
    client.train.cancel(job.name)


def test_cancelling_a_two_process_job_stops_every_process(
    client: Client, base_model: str, math_data: None
) -> None:
    job = client.train.create(
        base_model=base_model,
        training_data=DDP_DATA,
        hyperparameters={**DDP_JOB, "epochs": 50},
        resources={"accelerators_per_node": 2},
    )
    wait_for(lambda: client.train.get(job.name).current_step >= 3, 120, "the job to train")
    assert set(ranks_of(job.uid)) == {0, 1}
    client.train.cancel(job.name)
    wait_for(lambda: STATE_NAMES[client.train.get(job.name).state] == "cancelled", 60, "the cancel")
    wait_for(lambda: not ranks_of(job.uid), 30, "every torchrun process to stop")
