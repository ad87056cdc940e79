"""The training report on real jobs (planted bad samples named by id, a job stopped for a diverging
loss), and incremental training from a registered fine-tuned version with replay."""

from __future__ import annotations

import json
import random
from pathlib import Path

from google.protobuf import json_format

from tests.registry.test_registry_api import expect_error
from tests.train.test_methods import assistant, upload, user
from tuneforge import Client
from tuneforge.api.training import STATE_NAMES

PLANTED = ["garbage-1", "garbage-2", "garbage-3"]


def planted_rows() -> list[dict]:
    rng = random.Random(1)
    pool = "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者日都"
    rows = [
        {"id": f"ok-{i}", "messages": user(f"请确认订单{i}") + assistant("好的，订单已确认。")}
        for i in range(120)
    ]
    for k, row_id in enumerate(PLANTED):
        noise = "".join(rng.choice(pool) for _ in range(160))
        rows.insert(30 * (k + 1), {"id": row_id, "messages": user(f"请确认订单{900 + k}") + assistant(noise)})
    return rows


def test_report_names_the_planted_samples_behind_loss_spikes(
    client: Client, base_model: str, tmp_path: Path
) -> None:
    upload(client, "orders", "sft", planted_rows(), tmp_path)
    job = client.train.create(
        base_model=base_model,
        tuning="full",
        training_data={"orders": 1.0},
        hyperparameters={"learning_rate": 5e-3, "batch_size": 4, "epochs": 2, "seed": 3},
    )
    done = client.train.wait(job.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    report = client.train.report(job.name)
    assert report.final
    diagnosis = report.diagnosis
    print(
        "spikes:",
        [(s.step, round(s.loss, 2), round(s.baseline, 2), list(s.sample_ids)) for s in diagnosis.spikes],
    )
    assert diagnosis.verdict == "unstable", diagnosis
    named = {i.split(":", 1)[1] for s in diagnosis.spikes for i in s.sample_ids}
    for spike in diagnosis.spikes:  # every spike is explained by a planted sample in its batch
        assert any(i.endswith(tuple(PLANTED)) for i in spike.sample_ids), spike
    assert set(PLANTED) <= named, "each planted sample is named (all appear again in the second epoch)"
    points = client.train.metrics(job.name)
    assert all(len(p.sample_ids) in (4, (123 % 4) or 4) for p in points if not p.has_validation_loss)
    files = client.train.download_report(job.name, tmp_path / "report")
    assert {f.name for f in files} == {"report.json", "loss.png"}
    assert (tmp_path / "report" / "loss.png").read_bytes().startswith(b"\x89PNG")
    stored = json.loads((tmp_path / "report" / "report.json").read_text())
    assert stored["diagnosis"]["verdict"] == "unstable" and len(stored["curves"]["loss"]) == done.total_steps
    assert stored["mixture"]["train_rows"] == 123


def test_a_diverging_job_is_stopped_with_the_reason(client: Client, base_model: str, tmp_path: Path) -> None:
    upload(client, "orders", "sft", planted_rows(), tmp_path)
    job = client.train.create(
        base_model=base_model,
        tuning="full",
        training_data={"orders": 1.0},
        hyperparameters={"learning_rate": 0.5, "batch_size": 4, "epochs": 3, "scheduler": "constant"},
    )
    done = client.train.wait(job.name, timeout=300)
    assert STATE_NAMES[done.state] == "failed"
    assert done.error.reason in ("LOSS_DIVERGING", "LOSS_NAN"), done.error
    assert done.current_step < done.total_steps, "stopped early"
    report = client.train.report(job.name)
    assert report.diagnosis.verdict in ("diverging", "nan", "unstable"), report.diagnosis


def test_incremental_training_replays_the_parent_data(
    client: Client, base_model: str, math_data: None
) -> None:
    parent_job = client.train.wait(
        client.train.create(
            base_model=base_model,
            training_data={"math-grading-train": 0.2},
            hyperparameters={"learning_rate": 2e-3, "batch_size": 8, "epochs": 1},
        ).name,
        timeout=300,
    )
    assert STATE_NAMES[parent_job.state] == "succeeded", parent_job.error
    parent = parent_job.final_model_version
    client.data.install_preset("essay-grading")
    # Replay needs data the new method can train on: sft data cannot be replayed into dpo.
    client.data.create("prefs", "preference")
    child = client.train.create(
        base_model=parent,
        training_data={"essay-grading-train": 0.2},
        replay_share=0.25,
        hyperparameters={"learning_rate": 2e-3, "batch_size": 8, "epochs": 1},
    )
    assert child.replay_share == 0.25
    done = client.train.wait(child.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    mixture = json_format.MessageToDict(client.train.report(child.name).report)["mixture"]
    replay = mixture["replay"]
    assert replay["parent"] == parent
    new_rows = mixture["new_rows"]
    assert (
        replay["rows"] == round(new_rows * 0.25 / 0.75) and mixture["train_rows"] == new_rows + replay["rows"]
    )
    assert all(i.startswith("replay:math-grading-train/v1:math-grading-") for i in replay["ids"])
    # The parent's mixture was 20% of math-grading-train: replayed rows come from those rows only.
    version = client.models.get_version(done.final_model_version)
    assert version.lineage.parent_version == parent
    assert version.lineage.base_model == base_model, (
        "an adapter continued from an adapter keeps its full base"
    )
    assert version.lineage.hyperparameters["replay_share"] == 0.25
    refs = {d.dataset_version.split("/")[3] for d in version.lineage.dataset_versions}
    assert refs == {"essay-grading-train", "math-grading-train"}
    graph = client.models.lineage(done.final_model_version)
    assert parent in {n.model_version for n in graph.nodes}


def test_replay_refuses_data_the_method_cannot_use(client: Client, base_model: str, math_data: None) -> None:
    parent = client.train.wait(
        client.train.create(
            base_model=base_model,
            training_data={"math-grading-train": 0.1},
            hyperparameters={"learning_rate": 2e-3, "batch_size": 8, "epochs": 1},
        ).name,
        timeout=300,
    )
    client.data.install_preset("novel-role-play")
    error = expect_error(
        "INVALID_ARGUMENT",
        client.train.create,
        base_model=parent.final_model_version,
        method="kto",
        training_data={"novel-role-play-train": 0.2},
        replay_share=0.2,
    )
    assert error.violations[0].field == "training_job.replay_share"
    assert "holds sft data; kto trains on unpaired_preference data" in error.violations[0].description


def test_preference_and_full_training_continue_from_an_adapter(
    client: Client, base_model: str, math_data: None, tmp_path: Path
) -> None:
    from tests.train.test_methods import grading_preferences

    parent = client.train.wait(
        client.train.create(
            base_model=base_model,
            training_data={"math-grading-train": 0.1},
            hyperparameters={"learning_rate": 2e-3, "batch_size": 8, "epochs": 1},
        ).name,
        timeout=300,
    ).final_model_version
    upload(client, "grading-prefs", "preference", grading_preferences(32), tmp_path)
    dpo = client.train.create(
        base_model=parent,
        method="dpo",
        training_data={"grading-prefs": 1.0},
        hyperparameters={"learning_rate": 5e-3, "batch_size": 8, "epochs": 1},
    )
    full = client.train.create(
        base_model=parent,
        tuning="full",
        training_data={"math-grading-train": 0.1},
        hyperparameters={"learning_rate": 1e-4, "batch_size": 8, "epochs": 1},
    )
    for job in (dpo, full):
        done = client.train.wait(job.name, timeout=300)
        assert STATE_NAMES[done.state] == "succeeded", done.error
        version = client.models.get_version(done.final_model_version)
        assert version.lineage.parent_version == parent
        files = {f.path for f in version.files}
        if job is dpo:  # the parent's adapter trained further: still an adapter on the full base
            assert "adapter_config.json" in files and version.lineage.base_model == base_model
        else:  # the merged parent trained in full: a full model
            assert "model.safetensors" in files and "adapter_config.json" not in files
