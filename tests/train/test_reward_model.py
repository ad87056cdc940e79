"""Reward-model training (TRL's RewardTrainer) through the service: the output registers as a
sequence-classification version, its held-out pairwise accuracy is in the report, and GRPO trains
with it as its reward model."""

from __future__ import annotations

from pathlib import Path

from tests.registry.test_registry_api import expect_error
from tests.train.test_methods import grading_preferences, upload, user
from tuneforge import Client
from tuneforge.api.training import STATE_NAMES


def test_a_reward_model_learns_the_preferences_and_rewards_grpo(
    client: Client, base_model: str, tmp_path: Path
) -> None:
    upload(client, "graded-pairs", "preference", grading_preferences(96), tmp_path)
    arguments = {
        "base_model": base_model,
        "method": "reward_model",
        "training_data": {"graded-pairs": 1.0},
        "validation_split": 0.25,
        "hyperparameters": {
            "epochs": 3,
            "learning_rate": 1e-3,
            "batch_size": 8,
            "validation_interval_steps": 9,
        },
    }
    error = expect_error("INVALID_ARGUMENT", client.train.create, **arguments)
    assert (
        error.violations[0].field == "training_job.tuning_mode" and "full" in error.violations[0].description
    )
    job = client.train.wait(client.train.create(**arguments, tuning="full").name, timeout=600)
    assert STATE_NAMES[job.state] == "succeeded", job.error
    version = client.models.get_version(job.final_model_version)
    assert "score" in version.catalog.linear_modules, "the scoring head is in the registered weights"
    report = client.train.report(job.name)
    accuracy = report.report["pairwise_accuracy"]
    print(
        "held-out pairwise accuracy", accuracy, "curve", list(report.report["curves"]["validation_accuracy"])
    )
    assert accuracy >= 0.9, "the chosen (graded) answers score above the evasive ones on held-out pairs"

    # GRPO's check reads the version's config: a sequence-classification head is required.
    prompts = [
        {"id": f"p{i}", "prompt": user(f"请判断：{i} + 1 = {i + 1}"), "reference": ""} for i in range(8)
    ]
    upload(client, "judge-prompts", "prompt_only", prompts, tmp_path)
    grpo = client.train.create(
        base_model=base_model,
        method="grpo",
        training_data={"judge-prompts": 1.0},
        hyperparameters={"learning_rate": 1e-3, "batch_size": 8, "epochs": 1},
        method_parameters={"num_generations": 4, "max_completion_length": 6, "reward_model": version.name},
    )
    done = client.train.wait(grpo.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error


def test_grpo_and_a_reward_model_warm_start_from_an_sft_adapter(
    client: Client, base_model: str, math_data: None, tmp_path: Path
) -> None:
    parent = client.train.wait(
        client.train.create(
            base_model=base_model,
            training_data={"math-grading-train": 0.1},
            hyperparameters={"learning_rate": 2e-3, "batch_size": 8, "epochs": 1},
        ).name,
        timeout=300,
    ).final_model_version
    assert parent
    prompts = [{"id": f"p{i}", "prompt": user(f"写一个数字：第{i}题"), "reference": ""} for i in range(8)]
    upload(client, "digit-prompts", "prompt_only", prompts, tmp_path)
    upload(client, "warm-pairs", "preference", grading_preferences(16), tmp_path)
    grpo = client.train.create(
        base_model=parent,
        method="grpo",
        training_data={"digit-prompts": 1.0},
        hyperparameters={"learning_rate": 1e-3, "batch_size": 8, "epochs": 1},
        method_parameters={
            "num_generations": 4,
            "max_completion_length": 6,
            "rewards": [{"type": "regex", "pattern": "[0-9]"}],
            "loss_type": "dr_grpo",
            "scale_rewards": "none",
        },
    )
    reward = client.train.create(
        base_model=parent,
        method="reward_model",
        tuning="full",
        training_data={"warm-pairs": 1.0},
        hyperparameters={"learning_rate": 1e-3, "batch_size": 8, "epochs": 1},
    )
    for job in (grpo, reward):
        done = client.train.wait(job.name, timeout=300)
        assert STATE_NAMES[done.state] == "succeeded", done.error
        version = client.models.get_version(done.final_model_version)
        assert version.lineage.parent_version == parent, "the lineage records the warm start"
        files = {f.path for f in version.files}
        if job is grpo:  # the SFT adapter trained further by GRPO: an adapter on the full base
            assert "adapter_config.json" in files and version.lineage.base_model == base_model
            assert version.lineage.hyperparameters["method"] == "grpo"
        else:  # the merged SFT model with a scoring head
            assert "adapter_config.json" not in files and "score" in version.catalog.linear_modules
