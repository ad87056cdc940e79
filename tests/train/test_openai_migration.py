"""An OpenAI fine-tuning user's files, graders and job requests, unchanged, through the running platform:
chat SFT with per-turn weights and reasoning, DPO with `input`/`preferred_output`/`non_preferred_output`,
reinforcement rows with extra fields read by a grader, the same graders as evaluation metrics, and a
`score_model` grader asking the platform's own serve deployment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.kit import graders
from services.suite.suite import LocalSuite
from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.api.openai_jobs import OpenAIJobError, openai_job
from tuneforge.api.serving import DEPLOYMENT_STATES
from tuneforge.api.training import STATE_NAMES
from tuneforge.data.v1 import dataset_pb2

READY = dataset_pb2.DATASET_VERSION_STATE_READY
CITIES = [
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Egypt", "Cairo"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Chile", "Santiago"),
]
MULTI = {
    "type": "multi",
    "name": "capital",
    "graders": {
        "named": {
            "type": "string_check",
            "name": "named",
            "input": "{{ sample.output_text }}",
            "reference": "{{ item.reference_answer }}",
            "operation": "ilike",
        },
        "short": {
            "type": "python",
            "source": "def grade(sample, item):\n    return 1.0 if len(sample['output_text']) <= item['max_chars'] else 0.0\n",
        },
        "close": {
            "type": "text_similarity",
            "name": "close",
            "input": "{{ sample.output_text }}",
            "reference": "{{ item.reference_answer }}",
            "evaluation_metric": "fuzzy_match",
        },
    },
    "calculate_output": "0.6 * named + 0.2 * close + 0.2 * short",
}
PYTHON = {
    "type": "python",
    "name": "short",
    "source": "def grade(sample, item):\n    return 1.0 if len(sample['output_text']) <= item['max_chars'] else 0.0\n",
}


def refused_on(field: str, fn) -> None:
    error = expect_error("INVALID_ARGUMENT", fn)
    assert field in [v.field for v in error.violations], (field, error.violations, error.message)


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def upload(client: Client, tmp_path: Path, name: str, kind: str, records: list[dict]) -> str:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(jsonl(records))
    client.data.create(name, kind)
    version = client.data.upload(name, path)
    assert version.state == READY, (version.errors, version.failure)
    return version.name


def finished(client: Client, job) -> object:
    done = client.train.wait(job.name, timeout=600)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    return done


def test_openai_chat_sft_file_and_job_request(client: Client, base_model: str, tmp_path: Path) -> None:
    records = [
        {
            "messages": [
                {"role": "system", "content": "You answer with the capital."},
                {"role": "user", "content": f"Capital of {country}?"},
                {"role": "assistant", "content": "I am not sure.", "weight": 0},
                {"role": "user", "content": "Think again."},
                {
                    "role": "assistant",
                    "content": city,
                    "reasoning_content": f"{country}'s capital is {city}.",
                    "weight": 1,
                },
            ]
        }
        for country, city in CITIES
    ]
    version = upload(client, tmp_path, "oa-sft", "sft", records)
    row = next(iter(client.data.rows(version)))
    assert [m.get("weight") for m in row["messages"]] == [None, None, 0, None, 1]
    assert row["messages"][-1]["content"].startswith("<think>\nFrance's capital is Paris.\n</think>")
    request = {
        "model": base_model,
        "training_file": version,
        "suffix": "oa-capitals",
        "seed": 7,
        "method": {
            "type": "supervised",
            "supervised": {
                "hyperparameters": {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": "auto"}
            },
        },
    }
    job = client.train.create_openai(request)
    assert job.training_method == 2 and job.hyperparameters.epochs == 1 and job.hyperparameters.seed == 7
    done = finished(client, job)
    assert done.final_model_version.split("/models/")[1].startswith("oa-capitals/")


def test_openai_preference_file_trains_dpo(client: Client, base_model: str, tmp_path: Path) -> None:
    records = [
        {
            "input": {
                "messages": [{"role": "user", "content": f"Capital of {country}?"}],
                "tools": [],
                "parallel_tool_calls": True,
            },
            "preferred_output": [{"role": "assistant", "content": city}],
            "non_preferred_output": [{"role": "assistant", "content": "I do not know."}],
        }
        for country, city in CITIES
    ]
    version = upload(client, tmp_path, "oa-dpo", "preference", records)
    row = next(iter(client.data.rows(version)))
    assert row["chosen"][0]["content"] == "Paris" and row["rejected"][0]["content"] == "I do not know."
    job = client.train.create_openai(
        {
            "model": base_model,
            "training_file": version,
            "method": {
                "type": "dpo",
                "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1, "batch_size": 4}},
            },
        }
    )
    assert job.method_parameters.beta == pytest.approx(0.2)
    finished(client, job)


def test_openai_reinforcement_file_and_grader_train_grpo(
    client: Client, base_model: str, tmp_path: Path
) -> None:
    records = [
        {
            "messages": [{"role": "user", "content": f"Capital of {country}? One word."}],
            "reference_answer": city,
            "max_chars": 12,
        }
        for country, city in CITIES
    ]
    version = upload(client, tmp_path, "oa-rft", "prompt_only", records)
    row = next(iter(client.data.rows(version)))
    assert row["reference"] == "Paris" and json.loads(row["fields"]) == {
        "max_chars": 12,
        "reference_answer": "Paris",
    }
    request = {
        "model": base_model,
        "training_file": version,
        "method": {
            "type": "reinforcement",
            "reinforcement": {
                "grader": MULTI,
                "hyperparameters": {"n_epochs": 1, "batch_size": 4, "reasoning_effort": "medium"},
            },
        },
    }
    with pytest.warns(UserWarning, match="reasoning_effort='medium' has no counterpart"):
        job = client.train.create_openai(request)
    assert (
        job.training_method == 6 and json.loads(job.method_parameters.rewards[0].grader)["name"] == "capital"
    )
    done = finished(client, job)
    points = list(client.train.metrics(done.name))
    assert points and all("reward" in p.method_metrics for p in points)
    assert all(0.0 <= p.method_metrics["reward"] <= 1.0 for p in points)
    # the same grader, broken, is refused on its field before anything runs
    bad = json.loads(json.dumps(MULTI))
    bad["graders"]["named"]["operation"] = "regex"
    refused_on(
        "training_job.method_parameters.rewards[0].grader.graders.named.operation",
        lambda: client.train.create_openai(
            {**request, "method": {"type": "reinforcement", "reinforcement": {"grader": bad}}}
        ),
    )


def test_openai_graders_as_evaluation_metrics(
    client: Client, base_model: str, suite: LocalSuite, tmp_path: Path
) -> None:
    records = [
        {
            "messages": [{"role": "user", "content": f"Capital of {country}?"}],
            "reference_answer": city,
            "max_chars": 400,
        }
        for country, city in CITIES
    ]
    version = upload(client, tmp_path, "oa-eval", "eval", records)
    similarity = {
        "type": "text_similarity",
        "name": "bleu",
        "input": "{{sample.output_text}}",
        "reference": "{{item.reference}}",
        "evaluation_metric": "bleu",
        "pass_threshold": 0.5,
    }
    judge = {
        "type": "score_model",
        "name": "judge",
        "model": "nobody",
        "input": [{"role": "user", "content": "Score: {{sample.output_text}}"}],
    }
    evaluation = client.evals.create(
        [base_model],
        version,
        metrics=["exact_match"],
        max_new_tokens=8,
        graders=[MULTI, PYTHON, similarity, judge],
        grader_endpoint=suite.endpoints["openai"],
    )
    done = client.evals.wait(evaluation.name, timeout=600)
    result = done.results[0]
    assert {"grader:capital", "grader:short", "grader:bleu"} <= set(result.metrics), dict(result.metrics)
    assert result.metrics["grader:short"] == 1.0  # eight new tokens are always under 400 characters
    assert 0.0 <= result.metrics["grader:capital"] <= 1.0
    assert "grader:bleu" in result.pass_rates
    # the judge's API refuses a worker without its key: every sample unscored, the reason counted
    assert result.unscored["grader:judge"] == len(CITIES)
    assert any(k.startswith("grader:judge: the judge could not be reached") for k in result.grader_errors)
    refused_on("evaluation.graders[0]", lambda: client.evals.create([base_model], version, graders=[judge]))
    refused_on(
        "evaluation.graders[0].evaluation_metric",
        lambda: client.evals.create(
            [base_model], version, graders=[{**similarity, "evaluation_metric": "bertscore"}]
        ),
    )


def test_score_model_grader_asks_a_serve_deployment(
    client: Client, base_model: str, suite: LocalSuite, project: str, tmp_path: Path
) -> None:
    # A judge that has learned to answer 0.8: a tiny model tuned on that one reply, then deployed.
    records = [
        {
            "messages": [
                {"role": "user", "content": f"Rate this answer: {city}"},
                {"role": "assistant", "content": "0.8"},
            ]
        }
        for _, city in CITIES * 4
    ]
    version = upload(client, tmp_path, "judge-sft", "sft", records)
    job = client.train.create(
        base_model=base_model,
        training_data={version: 1.0},
        tuning="full",
        hyperparameters={"epochs": 6, "batch_size": 8, "learning_rate": 3e-3},
    )
    judge_version = finished(client, job).final_model_version
    client.serve.create("judge", judge_version, max_tokens=4, temperature=0.0)
    deployment = client.serve.wait("judge", timeout=180)
    assert DEPLOYMENT_STATES[deployment.state] == "ready", deployment.state_reason
    spec = graders.check(
        {
            "type": "score_model",
            "name": "judge",
            "model": "judge",
            "input": [{"role": "user", "content": "Rate this answer: {{sample.output_text}}"}],
            "range": [0, 1],
            "sampling_params": {"max_completions_tokens": 4},
        }
    )
    ask = graders.openai_judge(
        suite.endpoints["openai"], suite.admin_key, headers={"OpenAI-Project": project}
    )
    graded = graders.grade(spec, [graders.Sample(city, {}) for _, city in CITIES], judge=ask)
    assert graded.scores == [pytest.approx(0.8)] * len(CITIES), graded
    client.serve.delete("judge")


def test_openai_job_requests_map_or_name_their_field() -> None:
    kwargs, notes = openai_job(
        {
            "model": "m/1",
            "training_file": "d/1",
            "hyperparameters": {"n_epochs": 2, "learning_rate_multiplier": 2},
            "integrations": [{"type": "wandb"}],
        }
    )
    assert kwargs["method"] == "sft" and kwargs["hyperparameters"] == {
        "epochs": 2.0,
        "learning_rate": pytest.approx(6e-4),
    }
    assert notes == ["integrations is left out (TuneForge keeps its own lineage and events)"]
    auto, _ = openai_job(
        {
            "model": "m/1",
            "training_file": "d/1",
            "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": "auto", "batch_size": "auto"}}},
        }
    )
    assert auto["method"] == "dpo" and auto["hyperparameters"] == {} and "method_parameters" not in auto
    for request, field in (
        ({"training_file": "d/1"}, "model"),
        ({"model": "m/1", "training_file": "d/1", "method": {"type": "distillation"}}, "method.type"),
        (
            {
                "model": "m/1",
                "training_file": "d/1",
                "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1.5}}},
            },
            "method.supervised.hyperparameters.n_epochs",
        ),
        (
            {
                "model": "m/1",
                "training_file": "d/1",
                "method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": "big"}}},
            },
            "method.supervised.hyperparameters.batch_size",
        ),
        (
            {"model": "m/1", "method": {"type": "reinforcement", "reinforcement": {}}},
            "method.reinforcement.grader",
        ),
        ({"model": "m/1", "method": {"type": "supervised"}}, "training_file"),
    ):
        with pytest.raises(OpenAIJobError) as caught:
            openai_job(request)
        assert caught.value.field == field, (request, caught.value)


def test_the_sdk_defaults_that_auto_means_are_the_train_services() -> None:
    from services.train.spec import Hyperparameters
    from tuneforge.api import openai_jobs

    defaults = Hyperparameters()
    assert (defaults.epochs, defaults.batch_size, defaults.learning_rate) == (
        openai_jobs.DEFAULT_EPOCHS,
        openai_jobs.DEFAULT_BATCH_SIZE,
        openai_jobs.DEFAULT_LEARNING_RATE,
    )


def test_openai_records_convert_or_name_their_field() -> None:
    from services.data.problems import Problem
    from services.data.schemas import Schema, detect_schema, from_openai_chat
    from services.kit.rows import Kind

    evaluated = from_openai_chat(
        {
            "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
            "difficulty": "easy",
        },
        Kind.EVAL,
    )
    assert evaluated["reference"] == "4" and json.loads(evaluated["fields"]) == {"difficulty": "easy"}
    preference = {
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "preferred_output": [{"role": "assistant", "content": "hello"}],
        "non_preferred_output": [{"role": "assistant", "content": "go away"}],
    }
    assert detect_schema(preference) == Schema.OPENAI_CHAT
    for record, kind, field, reason in (
        (preference, Kind.SFT, "preferred_output", "WRONG_KIND"),
        (
            {**preference, "non_preferred_output": [{"role": "user", "content": "x"}]},
            Kind.PREFERENCE,
            "non_preferred_output[0].role",
            "ROLE_ORDER",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a", "weight": 0.5},
                ]
            },
            Kind.SFT,
            "messages[1].weight",
            "INVALID_WEIGHT",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q", "weight": 1},
                    {"role": "assistant", "content": "a"},
                ]
            },
            Kind.SFT,
            "messages[0].weight",
            "WRONG_FIELD",
        ),
        ({"messages": [{"role": "user", "content": "q"}]}, Kind.EVAL, "messages", "MISSING_REFERENCE"),
    ):
        with pytest.raises(Problem) as caught:
            from_openai_chat(record, kind)
        assert (caught.value.field, caught.value.reason) == (field, reason), caught.value
