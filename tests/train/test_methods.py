"""Preference and RL training on tiny local models, through the services: DPO, ORPO, KTO, GRPO."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.api.training import STATE_NAMES


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def upload(client: Client, dataset: str, kind: str, rows: list[dict], tmp_path: Path) -> str:
    path = tmp_path / f"{dataset}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    client.data.create(dataset, kind)
    version = client.data.upload(dataset, path)
    assert version.state == 1, version.summary
    return version.name


def grading_preferences(n: int, seed: int = 0) -> list[dict]:
    """Math answers graded in the required format (chosen) against evasive replies (rejected)."""
    rng = random.Random(seed)
    evasive = ["我不确定。", "这个问题我无法回答。", "请自己检查吧。", "不知道。"]
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        answer = a + b if i % 2 else a + b + rng.randint(1, 9)
        graded = "判定：正确\n得分：10分" if answer == a + b else "判定：错误\n得分：0分"
        rows.append(
            {
                "id": f"pref-{i}",
                "prompt": user(
                    f"请判断学生的答案是否正确，满分10分。\n题目：{a} + {b} = ?\n学生答案：{answer}"
                ),
                "chosen": assistant(graded),
                "rejected": assistant(rng.choice(evasive)),
            }
        )
    return rows


def margin(model_dir: Path, rows: list[dict], base_dir: Path | None = None) -> float:
    """Mean log p(chosen) - log p(rejected) over the rows, measured here with plain transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if base_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), model_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()

    def logp(prompt: list[dict], answer: list[dict]) -> float:
        start = len(
            tokenizer.apply_chat_template(
                prompt, add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )
        ids = tokenizer.apply_chat_template(
            prompt + answer, tokenize=True, return_dict=True, return_tensors="pt"
        )["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits.log_softmax(-1)
        targets = ids[0, start:]
        return float(logits[0, start - 1 : -1].gather(1, targets[:, None]).sum())

    return sum(logp(r["prompt"], r["chosen"]) - logp(r["prompt"], r["rejected"]) for r in rows) / len(rows)


def series(client: Client, job: str, key: str) -> list[float]:
    return [p.method_metrics[key] for p in client.train.metrics(job) if key in p.method_metrics]


def first_last(values: list[float]) -> tuple[float, float]:
    size = max(1, len(values) // 4)
    return sum(values[:size]) / size, sum(values[-size:]) / size


@pytest.mark.parametrize(
    ("method", "tuning", "learning_rate"),
    [("dpo", "lora", 5e-3), ("orpo", "lora", 5e-3), ("dpo", "full", 5e-4), ("orpo", "full", 5e-4)],
)
def test_preference_training_raises_the_chosen_over_rejected_margin(
    client: Client,
    base_model: str,
    tiny_model_dir: Path,
    tmp_path: Path,
    method: str,
    tuning: str,
    learning_rate: float,
) -> None:
    rows = grading_preferences(64)
    upload(client, "grading-prefs", "preference", rows, tmp_path)
    job = client.train.create(
        base_model=base_model,
        method=method,
        tuning=tuning,
        training_data={"grading-prefs": 1.0},
        hyperparameters={"learning_rate": learning_rate, "batch_size": 8, "epochs": 2},
        method_parameters={"beta": 0.1},
    )
    assert job.method_parameters.beta == pytest.approx(0.1)
    done = client.train.wait(job.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    start, end = first_last(series(client, job.name, "rewards/margins"))
    assert end > start, (start, end)
    tuned = tmp_path / "tuned"
    client.models.download(done.final_model_version, tuned)
    held_out = grading_preferences(24, seed=7)
    before = margin(tiny_model_dir, held_out)
    after = margin(tuned, held_out, base_dir=tiny_model_dir if tuning == "lora" else None)
    print(
        f"{method} ({tuning}): training margin {start:.3f} -> {end:.3f}; held-out log-prob margin {before:.2f} -> {after:.2f}"
    )
    assert after > before + 0.5, (before, after)  # on prompts it never saw
    lineage = client.models.get_version(done.final_model_version).lineage
    assert lineage.hyperparameters["method"] == method
    assert lineage.hyperparameters["method_parameters"]["beta"] == pytest.approx(0.1)


@pytest.mark.parametrize(("tuning", "learning_rate"), [("lora", 5e-3), ("full", 5e-4)])
def test_kto_trains_on_unpaired_preferences(
    client: Client, base_model: str, tuning: str, learning_rate: float
) -> None:
    client.data.install_preset("novel-role-play")
    job = client.train.create(
        base_model=base_model,
        method="kto",
        tuning=tuning,
        training_data={"novel-role-play-train": 0.4},
        hyperparameters={"learning_rate": learning_rate, "batch_size": 8, "epochs": 2},
        method_parameters={"desirable_weight": 1.0, "undesirable_weight": 1.5},
    )
    done = client.train.wait(job.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    start, end = first_last(series(client, job.name, "rewards/margins"))
    print(f"kto ({tuning}): training margin {start:.3f} -> {end:.3f}")
    assert end > start, (start, end)
    assert series(client, job.name, "kl"), "the KL estimate is recorded"


def test_grpo_raises_the_mean_rule_reward(client: Client, base_model: str, tmp_path: Path) -> None:
    prompts = [{"id": f"p{i}", "prompt": user(f"写一个数字：第{i}题"), "reference": ""} for i in range(128)]
    upload(client, "digits", "prompt_only", prompts, tmp_path)
    job = client.train.create(
        base_model=base_model,
        method="grpo",
        tuning="full",
        training_data={"digits": 1.0},
        hyperparameters={"learning_rate": 3e-3, "batch_size": 16, "epochs": 2},
        method_parameters={
            "num_generations": 8,
            "max_completion_length": 8,
            "rewards": [{"type": "regex", "pattern": "[0-9]"}],
        },
    )
    done = client.train.wait(job.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    start, end = first_last(series(client, job.name, "reward"))
    print(f"grpo: mean reward {start:.3f} -> {end:.3f}")
    assert end > start + 0.2, (start, end)
    report = client.train.report(job.name)
    assert report.final and report.diagnosis.verdict == "reward_rising"


def test_grpo_with_a_registered_reward_model(
    client: Client, base_model: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.num_labels = 1
    config.architectures = ["LlamaForSequenceClassification"]
    torch.manual_seed(0)
    folder = tmp_path / "reward"
    LlamaForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    client.models.create("judge-rm")
    reward_model = client.models.upload("judge-rm", folder).name
    prompts = [{"id": f"p{i}", "prompt": user(f"写一句问候：{i}"), "reference": ""} for i in range(16)]
    upload(client, "greetings", "prompt_only", prompts, tmp_path)
    arguments = {
        "base_model": base_model,
        "method": "grpo",
        "training_data": {"greetings": 1.0},
        "hyperparameters": {"learning_rate": 1e-3, "batch_size": 8, "epochs": 1},
    }
    error = expect_error(
        "INVALID_ARGUMENT",
        client.train.create,
        **arguments,
        method_parameters={"num_generations": 4, "reward_model": base_model},
    )
    assert "sequence-classification" in error.violations[0].description
    done = client.train.wait(
        client.train.create(
            **arguments,
            method_parameters={
                "num_generations": 4,
                "max_completion_length": 6,
                "reward_model": reward_model,
            },
        ).name,
        timeout=300,
    )
    assert STATE_NAMES[done.state] == "succeeded", done.error
    assert series(client, done.name, "reward"), "the reward model's scores are logged"


@pytest.mark.parametrize(
    ("method_parameters", "field"),
    [
        ({}, "training_job.method_parameters.rewards"),
        ({"rewards": [{"type": "bleu"}]}, "training_job.method_parameters.rewards[0].type"),
        (
            {"rewards": [{"type": "regex", "pattern": "(["}]},
            "training_job.method_parameters.rewards[0].pattern",
        ),
        ({"rewards": [{"type": "json_fields"}]}, "training_job.method_parameters.rewards[0].required_fields"),
        (
            {"rewards": [{"type": "regex", "pattern": "x"}], "num_generations": 3},
            "training_job.method_parameters.num_generations",
        ),
        (
            {"rewards": [{"type": "exact_answer"}]},
            "training_job.training_data[0].dataset_version",
        ),  # no references
        (
            {"rewards": [{"type": "regex", "pattern": "x"}], "desirable_weight": 2},
            "training_job.method_parameters.desirable_weight",
        ),
    ],
)
def test_bad_grpo_jobs_name_the_field(
    client: Client, base_model: str, tmp_path: Path, method_parameters: dict, field: str
) -> None:
    prompts = [{"id": f"p{i}", "prompt": user(f"题目{i}"), "reference": ""} for i in range(8)]
    upload(client, "plain-prompts", "prompt_only", prompts, tmp_path)
    error = expect_error(
        "INVALID_ARGUMENT",
        client.train.create,
        base_model=base_model,
        method="grpo",
        training_data={"plain-prompts": 1.0},
        hyperparameters={"batch_size": 8},
        method_parameters=method_parameters,
    )
    assert field in {v.field for v in error.violations}, error.violations
