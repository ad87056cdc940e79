"""Evaluations over real gRPC, NATS, S3 and an evaluation worker, on tiny local models."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.api.evaluations import STATE_NAMES

METRICS = [
    "score_accuracy",
    "score_mae",
    "exact_match",
    "rouge_l",
    "bleu4",
    "corpus_bleu",
    "edit_distance_normalized",
]


def test_fine_tuned_beats_base_on_the_preset_task(client: Client, base_model: str, math_data: None) -> None:
    job = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 1.0},
        tuning="full",
        hyperparameters={"epochs": 3, "learning_rate": 1e-3, "batch_size": 8},
    )
    job = client.train.wait(job.name, timeout=600)
    tuned = job.final_model_version
    assert tuned, job.error
    evaluation = client.evals.create(
        [base_model, tuned], "math-grading-eval", metrics=METRICS, max_new_tokens=24, batch_size=16
    )
    updates = list(client.evals.watch(evaluation.name))
    done = client.evals.get(evaluation.name)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    assert updates[-1].state == done.state and done.done_samples == 2 * done.total_samples == 120
    base, fine = ({r.model_version: r for r in done.results}[m] for m in (base_model, tuned))
    assert fine.metrics["score_accuracy"] >= base.metrics["score_accuracy"] + 0.25, (
        base.metrics,
        fine.metrics,
    )
    assert fine.metrics["rouge_l"] > base.metrics["rouge_l"] + 30
    assert math.isclose(fine.delta_vs_baseline["rouge_l"], fine.metrics["rouge_l"] - base.metrics["rouge_l"])
    assert fine.samples == 60 and fine.tokens_per_second > 0

    predictions = list(
        client.evals.predictions(evaluation.name, model_version=tuned, order_by="rouge_l", page_size=7)
    )
    assert len(predictions) == 60 and all(p.model_version == tuned for p in predictions)
    rouge = [p.scores["rouge_l"] for p in predictions]
    assert rouge == sorted(rouge), "worst first"
    assert predictions[0].reference.startswith("判定") and predictions[0].prompt.startswith(
        "请判断学生的答案"
    )
    everything = list(client.evals.predictions(evaluation.name))
    assert len(everything) == 120


def _upload(client: Client, tmp_path: Path, dataset: str, kind: str, rows: list[dict]) -> None:
    client.data.create(dataset, kind)
    path = tmp_path / f"{dataset}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    client.data.upload(dataset, path)


def test_bad_evaluations_are_refused(
    client: Client, base_model: str, math_data: None, tmp_path: Path
) -> None:
    _upload(client, tmp_path, "prefs", "preference", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    _upload(client, tmp_path, "open", "prompt_only", [{"prompt": "写一首诗"}])
    cases = [
        ({"dataset_version": "prefs"}, "evaluation.dataset_version", "preference data"),
        ({"dataset_version": "open"}, "evaluation.metrics", "have none"),
        ({"model_versions": ["tiny-base/9"]}, "evaluation.model_versions[0]", "does not exist"),
        ({"metrics": ["bleu4", "perplexity"]}, "evaluation.metrics", "perplexity"),
        ({"dataset_version": "no-such-data"}, "evaluation.dataset_version", "does not exist"),
        ({"model_versions": []}, "evaluation.model_versions", "at least one"),
        ({"max_new_tokens": 100000}, "evaluation.generation.max_new_tokens", "between"),
    ]
    for changes, field, fragment in cases:
        arguments = {
            "model_versions": [base_model],
            "dataset_version": "math-grading-eval",
            "metrics": ["bleu4"],
            **changes,
        }
        error = expect_error(
            "INVALID_ARGUMENT",
            client.evals.create,
            arguments.pop("model_versions"),
            arguments.pop("dataset_version"),
            **arguments,
        )
        assert error.violations[0].field == field and fragment in error.violations[0].description, (
            changes,
            error.violations,
        )
    assert list(client.evals.list()) == [], "nothing was queued"
    # Metrics that need no reference run on prompt-only data.
    evaluation = client.evals.create([base_model], "open", metrics=["word_count_deviation"], max_new_tokens=4)
    assert STATE_NAMES[client.evals.wait(evaluation.name, timeout=300).state] == "succeeded"
    expect_error(
        "INVALID_ARGUMENT", lambda: list(client.evals.predictions(evaluation.name, order_by="bleu4"))
    )
    expect_error("NOT_FOUND", client.evals.get, "nope")


def test_judge_flow_counts_parse_failures(client: Client, base_model: str, math_data: None) -> None:
    job = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 0.2},
        hyperparameters={"epochs": 1, "learning_rate": 2e-3, "batch_size": 8},
    )
    tuned = client.train.wait(job.name, timeout=300).final_model_version
    client.data.create("small-eval", "eval")
    rows = list(client.data.rows("math-grading-eval", page_size=8))[:8]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.jsonl"
        path.write_text(
            "".join(
                json.dumps({"prompt": r["prompt"], "reference": r["reference"]}, ensure_ascii=False) + "\n"
                for r in rows
            )
        )
        client.data.upload("small-eval", path)
    evaluation = client.evals.create(
        [base_model, tuned],
        "small-eval",
        metrics=["rouge_l"],
        max_new_tokens=8,
        judge={
            "model_version": base_model,
            "pairwise": True,
            "rubric": "correct verdict and score",
            "max_new_tokens": 8,
        },
    )
    done = client.evals.wait(evaluation.name, timeout=600)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    assert done.judge.model_version == base_model and done.judge.pairwise
    for result in done.results:
        assert result.judge_scored + result.judge_parse_failures == 8, (
            "every judge output is a score or a counted failure"
        )
    (pair,) = done.pairwise
    assert pair.baseline == base_model and pair.model_version == tuned
    assert pair.wins + pair.ties + pair.losses + pair.parse_failures == 8
    error = expect_error(
        "INVALID_ARGUMENT",
        client.evals.create,
        [base_model],
        "small-eval",
        judge={"model_version": base_model, "pairwise": True},
    )
    assert error.violations[0].field == "evaluation.judge.pairwise"
