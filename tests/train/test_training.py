"""Training end to end through gRPC with real NATS, S3, a worker, and tiny local models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from services.suite.suite import LocalSuite
from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.api.training import STATE_NAMES
from tuneforge.registry.v1 import model_pb2
from tuneforge.train.v1 import training_job_pb2

FAST = {"learning_rate": 2e-3, "batch_size": 8, "epochs": 2}


def train_losses(client: Client, job: str) -> list[float]:
    return [p.loss for p in client.train.metrics(job) if not p.has_validation_loss]


def falls(losses: list[float]) -> bool:
    head, tail = losses[: max(2, len(losses) // 4)], losses[-max(2, len(losses) // 4) :]
    return sum(tail) / len(tail) < sum(head) / len(head) - 0.05


def generate(model_dir: Path, base_dir: Path | None = None) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if base_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), model_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "请判断学生的答案是否正确"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    return tokenizer.decode(out[0][prompt["input_ids"].shape[1] :])


def test_sft_lora_with_validation_checkpoints_and_registration(
    client: Client, base_model: str, math_data: None, tiny_model_dir: Path, tmp_path: Path
) -> None:
    job = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 0.2},
        validation_split=0.2,
        hyperparameters={
            **FAST,
            "checkpoint_interval_steps": 4,
            "validation_interval_steps": 2,
            "checkpoint_count": 2,
        },
        job_id="lora-job",
    )
    assert STATE_NAMES[job.state] == "queued" and job.total_steps == 12
    assert job.training_data[0].dataset_version.endswith("/datasets/math-grading-train/versions/1"), (
        "latest resolved at creation"
    )
    updates = list(client.train.watch("lora-job"))
    done = client.train.get("lora-job")
    assert STATE_NAMES[done.state] == "succeeded", done.error
    assert any(isinstance(u, training_job_pb2.MetricPoint) for u in updates), (
        "the watch stream carries metrics"
    )
    assert [STATE_NAMES[u.state] for u in updates if isinstance(u, training_job_pb2.TrainingJob)][
        -1
    ] == "succeeded"

    assert falls(train_losses(client, "lora-job"))
    validation_steps = [p.step for p in client.train.metrics("lora-job") if p.has_validation_loss]
    assert validation_steps == [2, 4, 6, 8, 10, 12]

    checkpoints = client.train.checkpoints("lora-job")
    kept = [c.step for c in checkpoints]
    best = [c.step for c in checkpoints if c.best]
    assert len(best) == 1 and set(kept[-2:]) <= {4, 8, 12} | set(best) and len(kept) <= 3
    assert all(c.step % 4 == 0 or c.step == 12 for c in checkpoints)
    assert all(
        "adapter_model.safetensors" in {f.path for f in c.files}
        and "training_args.bin" not in {f.path for f in c.files}
        for c in checkpoints
    )

    version = client.models.get_version(done.final_model_version)
    assert version.kind == model_pb2.MODEL_VERSION_KIND_LORA_ADAPTER
    assert version.lineage.base_model == base_model and version.lineage.source_job == done.name
    assert version.lineage.dataset_versions[0].sampling_rate == 0.2
    assert version.metrics["train_loss"] > 0 and "best_validation_loss" in version.metrics
    client.models.download(version.name, tmp_path / "adapter")
    assert isinstance(generate(tmp_path / "adapter", tiny_model_dir), str)


def test_sft_full_and_post_pretrain(client: Client, base_model: str, math_data: None, tmp_path: Path) -> None:
    full = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 0.2},
        tuning="full",
        hyperparameters={**FAST, "learning_rate": 1e-3},
        job_id="full-job",
    )
    client.data.install_preset("general")
    text = client.train.create(
        base_model=base_model,
        training_data={"general-text": 0.1},
        method="post_pretrain",
        tuning="full",
        hyperparameters={**FAST, "learning_rate": 1e-3},
        job_id="pretrain-job",
    )
    for job in (full, text):
        done = client.train.wait(job.name, timeout=300)
        assert STATE_NAMES[done.state] == "succeeded", done.error
        assert falls(train_losses(client, job.name)), train_losses(client, job.name)
    version = client.models.get_version(client.train.get("full-job").final_model_version)
    assert version.kind == model_pb2.MODEL_VERSION_KIND_FULL
    client.models.download(version.name, tmp_path / "full")
    assert isinstance(generate(tmp_path / "full"), str)


def test_early_stopping_stops(client: Client, base_model: str, math_data: None) -> None:
    job = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 0.4},
        validation_split=0.25,
        hyperparameters={
            **FAST,
            "epochs": 3,
            "validation_interval_steps": 2,
            "checkpoint_interval_steps": 2,
            "early_stopping": {"patience": 2, "min_delta": 5.0},
        },
    )
    done = client.train.wait(job.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    validations = [p.step for p in client.train.metrics(job.name) if p.has_validation_loss]
    assert validations == [2, 4, 6], "no improvement of 5.0: stop after patience 2"
    assert done.metrics["steps"] == 6 < done.total_steps


def test_cancel_stops_a_running_job_and_keeps_checkpoints(
    client: Client, base_model: str, math_data: None
) -> None:
    job = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 3.0},
        hyperparameters={**FAST, "epochs": 5, "batch_size": 4, "checkpoint_interval_steps": 5},
    )
    deadline = time.monotonic() + 120
    while not client.train.checkpoints(job.name) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert client.train.checkpoints(job.name), "a checkpoint was saved before the cancel"
    client.train.cancel(job.name)
    started = time.monotonic()
    done = client.train.wait(job.name, timeout=60)
    assert STATE_NAMES[done.state] == "cancelled" and time.monotonic() - started < 20
    assert done.current_step < done.total_steps
    assert client.train.checkpoints(job.name), "checkpoints are kept"
    expect_error("FAILED_PRECONDITION", client.train.cancel, job.name)
    queued_then_cancelled = client.train.cancel(
        client.train.create(
            base_model=base_model, training_data={"math-grading-train": 0.1}, hyperparameters=FAST
        ).name
    )
    assert STATE_NAMES[queued_then_cancelled.state] in ("cancelled", "running")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"base_model": "projects/{p}/models/nope/versions/1"}, "training_job.base_model"),
        ({"training_data": {"math-grading-eval": 1.0}}, "training_job.training_data[0].dataset_version"),
        ({"training_data": {"no-such-data": 1.0}}, "training_job.training_data[0].dataset_version"),
        ({"hyperparameters": {"learning_rate": -1}}, "training_job.hyperparameters.learning_rate"),
        (
            {"hyperparameters": {"checkpoint_interval_steps": 10000}},
            "training_job.hyperparameters.checkpoint_interval_steps",
        ),
        ({"hyperparameters": {"max_sequence_length": 8}}, "training_job.hyperparameters.max_sequence_length"),
        ({"hyperparameters": {"epochs": 0.0001, "learning_rate": 1e-3}}, None),
        ({"method": "post_pretrain"}, "training_job.training_data[0].dataset_version"),
        ({"method": "ppo"}, "training_job.method"),
        ({"method": "dpo"}, "training_job.training_data[0].dataset_version"),  # sft data for dpo
        ({"method_parameters": {"beta": 0.2}}, "training_job.method_parameters.beta"),  # not an sft one
        ({"priority": "urgent"}, "training_job.priority"),
        ({"replay_share": 0.3}, "training_job.replay_share"),  # the base is not a fine-tuned version
        ({"replay_share": 0.95}, "training_job.replay_share"),
        (
            {"hyperparameters": {"validation_interval_steps": 5}},
            "training_job.hyperparameters.validation_interval_steps",
        ),
        ({"tuning": "prefix"}, "training_job.tuning"),
    ],
)
def test_impossible_jobs_are_refused_before_queueing(
    client: Client, base_model: str, math_data: None, changes: dict, field: str | None
) -> None:
    arguments = {
        "base_model": base_model,
        "training_data": {"math-grading-train": 0.2},
        "hyperparameters": dict(FAST),
    }
    for key, value in changes.items():
        if key == "hyperparameters":
            arguments["hyperparameters"] = {**FAST, **value}
        elif key == "base_model":
            arguments["base_model"] = value.format(p=client.project)
        else:
            arguments[key] = value
    if field is None:  # a tiny but possible run is accepted
        assert client.train.create(**arguments).total_steps >= 1
        return
    error = expect_error("INVALID_ARGUMENT", client.train.create, **arguments)
    assert field in {v.field for v in error.violations}, error.violations
    assert all(STATE_NAMES[j.state] != "queued" or j.total_steps for j in client.train.list())


def test_worker_killed_mid_job_is_resumed_by_another(tiny_model_dir: Path, tmp_path: Path) -> None:
    env = {"TUNEFORGE_TRAIN_ACK_WAIT_SECONDS": "4"}
    with (
        LocalSuite(tmp_path / "suite", services=("registry", "data", "train"), extra_env=env) as suite,
        Client(suite.endpoints, api_key=suite.admin_key, project="resume") as client,
    ):
        client.models.create("tiny-base")
        base = client.models.upload("tiny-base", tiny_model_dir).name
        client.data.install_preset("math-grading")
        job = client.train.create(
            base_model=base,
            training_data={"math-grading-train": 1.0},
            hyperparameters={
                **FAST,
                "epochs": 3,
                "batch_size": 4,
                "checkpoint_interval_steps": 10,
                "checkpoint_count": 3,
            },
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            kept = client.train.checkpoints(job.name)
            if kept and client.train.get(job.name).current_step >= kept[-1].step + 3:
                break
            time.sleep(0.2)
        suite.processes["worker-0"].kill()
        # Read after the kill: the job runs on (and may store another checkpoint) until then.
        checkpoint = client.train.checkpoints(job.name)[-1].step
        progress_before = client.train.get(job.name).current_step
        suite.start_worker(1)
        done = client.train.wait(job.name, timeout=300)
        assert STATE_NAMES[done.state] == "succeeded", done.error
        assert done.attempt == 2
        steps = [p.step for p in client.train.metrics(job.name) if not p.has_validation_loss]
        assert steps == list(range(1, done.total_steps + 1)), (
            "every step once, continuing past the checkpoint"
        )
        assert checkpoint <= progress_before <= done.total_steps
        log = (suite.data_dir / "logs" / "worker-1.log").read_text()
        assert f'"step": {checkpoint}' in log and "resuming from checkpoint" in log
        versions = list(client.models.list_versions(done.output_model.rsplit("/", 1)[-1]))
        assert [v.name for v in versions] == [done.final_model_version], "registered once"
        assert json.loads(json.dumps(dict(versions[0].metrics)))["steps"] == done.total_steps


def test_a_kept_checkpoint_can_be_registered_later(
    client: Client, base_model: str, math_data: None, tmp_path: Path
) -> None:
    job = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 0.2},
        hyperparameters={**FAST, "checkpoint_interval_steps": 3, "checkpoint_count": 2},
    )
    done = client.train.wait(job.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    step = client.train.checkpoints(job.name)[0].step
    name = client.train.register_checkpoint(job.name, step)
    assert client.train.register_checkpoint(job.name, step) == name, "idempotent"
    version = client.models.get_version(name)
    assert version.tags["checkpoint_step"] == str(step) and version.lineage.source_job == done.name
    assert {f.path for f in version.files} >= {"adapter_model.safetensors", "adapter_config.json"}
    assert not {f.path for f in version.files} & {"optimizer.pt", "scheduler.pt", "rng_state.pth"}
    expect_error("NOT_FOUND", client.train.register_checkpoint, job.name, 999)


def test_two_workers_share_one_queue(
    client: Client, base_model: str, math_data: None, suite: LocalSuite
) -> None:
    """A second worker joins the shared suite: two jobs queued at once go one to each."""
    extra = suite.start_worker(1)
    try:
        jobs = [
            client.train.create(
                base_model=base_model,
                training_data={"math-grading-train": 0.1},
                hyperparameters={**FAST, "epochs": 1},
            )
            for _ in range(2)
        ]
        done = [client.train.wait(job.name, timeout=300) for job in jobs]
        assert all(STATE_NAMES[d.state] == "succeeded" for d in done), [d.error for d in done]
        assert sorted(d.worker for d in done) == ["worker-0", "worker-1"], "each worker took one job"
        assert all(d.attempt == 1 for d in done)
    finally:
        extra.stop()
