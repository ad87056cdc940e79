"""Evaluations over real gRPC, NATS, S3 and an evaluation worker, on tiny local models."""

from __future__ import annotations

import json
import math
import tempfile
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

    with tempfile.TemporaryDirectory() as tmp:
        written = client.evals.download_report(evaluation.name, tmp)
        assert sorted(p.name for p in written) == ["distributions.png", "metrics.png", "report.json"]
        assert all(p.read_bytes().startswith(b"\x89PNG") for p in written if p.suffix == ".png")
        report = json.loads(written[0].read_text())
    assert report["baseline"] == base_model and report["metrics"] == METRICS
    assert report["results"][1]["metrics"]["rouge_l"] == fine.metrics["rouge_l"]
    worst = report["worst_samples"][tuned]["rouge_l"]
    assert [w["score"] for w in worst] == rouge[:5], "the report's worst samples are the lowest scores"
    if "score_mae" in METRICS:
        maes = [w["score"] for w in report["worst_samples"][tuned]["score_mae"]]
        assert maes == sorted(maes, reverse=True), "lower is better: the worst are the largest"


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


def test_human_ratings_round_trip(client: Client, base_model: str, math_data: None, tmp_path: Path) -> None:
    _upload(
        client,
        tmp_path,
        "tiny-eval",
        "eval",
        [{"prompt": f"问题{i}", "reference": f"答案{i}"} for i in range(4)],
    )
    client.models.create("other")
    client.models.download(base_model, tmp_path / "copy")
    other = client.models.upload("other", tmp_path / "copy").name
    evaluation = client.evals.wait(
        client.evals.create([base_model, other], "tiny-eval", metrics=["rouge_l"], max_new_tokens=4).name,
        timeout=300,
    )
    assert STATE_NAMES[evaluation.state] == "succeeded", evaluation.error

    rating = client.evals.create_rating_task(
        evaluation.name, kind="rating", model_versions=[other], scale=5, task_id="stars"
    )
    items = list(client.evals.rating_items(rating.name, page_size=3))
    assert rating.items == 4 and len(items) == 4 and all(len(i.answers) == 1 for i in items)
    for item, scores in zip(items, [(5, 5), (4, 3), (2, 2), (1, 1)], strict=True):
        for rater, score in zip(("ana", "bo"), scores, strict=True):
            client.evals.submit_rating(rating.name, item.sample_id, rater, score=score, comment="ok")
    assert client.evals.submit_rating(rating.name, items[1].sample_id, "bo", score=4) == 2, (
        "a resubmission replaces"
    )
    summary = client.evals.rating_summary(rating.name)
    assert (summary.ratings, summary.raters, summary.items_with_agreement) == (8, 2, 4)
    assert (
        summary.mean_score == (5 + 5 + 4 + 4 + 2 + 2 + 1 + 1) / 8
        and summary.percent_agreement == 1.0
        and summary.fleiss_kappa == 1.0
    )

    side = client.evals.create_rating_task(evaluation.name, kind="side_by_side")
    pairs = list(client.evals.rating_items(side.name))
    assert all(len(p.answers) == 2 for p in pairs)
    for pair, choices in zip(pairs, [("A", "A"), ("B", "A"), ("tie", "tie"), ("B", "B")], strict=True):
        for rater, choice in zip(("ana", "bo"), choices, strict=True):
            client.evals.submit_rating(side.name, pair.sample_id, rater, preference=choice)
    summary = client.evals.rating_summary(side.name)
    assert (summary.share_a, summary.share_b, summary.share_tie) == (3 / 8, 3 / 8, 2 / 8)
    assert summary.percent_agreement == 0.75

    assert (
        expect_error(
            "INVALID_ARGUMENT", client.evals.submit_rating, rating.name, items[0].sample_id, "ana", score=9
        )
        .violations[0]
        .field
        == "score"
    )
    assert (
        expect_error(
            "INVALID_ARGUMENT",
            client.evals.submit_rating,
            side.name,
            pairs[0].sample_id,
            "ana",
            preference="C",
        )
        .violations[0]
        .field
        == "preference"
    )
    assert (
        expect_error("INVALID_ARGUMENT", client.evals.submit_rating, rating.name, "nope", "ana", score=3)
        .violations[0]
        .field
        == "sample_id"
    )


def test_auto_evaluation_after_a_training_job(client: Client, base_model: str, math_data: None) -> None:
    import time

    job = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 0.2},
        hyperparameters={"epochs": 1, "learning_rate": 2e-3, "batch_size": 8},
        evaluate_on="math-grading-eval",
        evaluation_metrics=["rouge_l", "score_accuracy"],
    )
    assert job.auto_evaluation.dataset_version.endswith("/datasets/math-grading-eval/versions/1")
    done = client.train.wait(job.name, timeout=300)
    version = done.final_model_version
    deadline = time.monotonic() + 300
    evaluation = None
    while time.monotonic() < deadline:
        found = [e for e in client.evals.list() if version in e.model_versions]
        if found and STATE_NAMES[found[0].state] in ("succeeded", "failed"):
            evaluation = found[0]
            break
        time.sleep(1)
    assert evaluation is not None and STATE_NAMES[evaluation.state] == "succeeded", evaluation
    assert list(evaluation.model_versions) == [base_model, version], "against its base"
    assert len([e for e in client.evals.list() if version in e.model_versions]) == 1, "once"
    while time.monotonic() < deadline and "eval.rouge_l" not in client.models.get_version(version).metrics:
        time.sleep(0.5)
    linked = client.models.get_version(version)
    assert linked.tags["evaluation"] == evaluation.name
    assert (
        linked.metrics["eval.rouge_l"]
        == next(r for r in evaluation.results if r.model_version == version).metrics["rouge_l"]
    )


def test_score_rule_pass_thresholds_and_prompts_past_the_context(
    client: Client, base_model: str, tmp_path: Path
) -> None:
    graded = '{"内容": {"得分": "14分"}, "表达": {"得分": "12分"}, "最终得分": 36}'
    essay = "春天来了，公园里的花都开了。" * 300  # ~4,200 characters: far past the tiny model's 512 positions
    rows = [
        {"prompt": "给这篇作文打分：" + essay, "reference": graded},
        {"prompt": "给这篇作文打分：今天天气很好。", "reference": graded},
    ]
    _upload(client, tmp_path, "essays", "eval", rows)
    bad = [
        ({"score_regex": "(a)(b)"}, "evaluation.score_rule", "one group"),
        ({"score_regex": "x", "score_json_path": "y"}, "evaluation.score_rule", "not both"),
        ({"pass_thresholds": {"rouge_l": 10}}, "evaluation.pass_thresholds[rouge_l]", "not one of"),
        ({"pass_thresholds": {"bleu4": math.nan}}, "evaluation.pass_thresholds[bleu4]", "finite"),
        ({"python_grader": "def grade(s, i):\n  return (1"}, "evaluation.python_grader.source", "line 2"),
        ({"python_grader": "def score(s, i):\n  return 1"}, "evaluation.python_grader.source", "grade("),
        (
            {"python_grader": "def grade(s, i):\n  return 1", "grader_timeout_seconds": 60},
            "evaluation.python_grader.timeout_seconds",
            "at most 10",
        ),
    ]
    for arguments, field, fragment in bad:
        error = expect_error(
            "INVALID_ARGUMENT",
            client.evals.create,
            [base_model],
            "essays",
            metrics=["score_mae", "bleu4"],
            **arguments,
        )
        assert error.violations[0].field == field and fragment in error.violations[0].description
    evaluation = client.evals.create(
        [base_model],
        "essays",
        metrics=["score_mae", "bleu4"],
        max_new_tokens=16,
        score_json_path="最终得分",
        pass_thresholds={"bleu4": 0},
    )
    assert evaluation.score_rule.json_path == "最终得分" and evaluation.pass_thresholds["bleu4"] == 0
    done = client.evals.wait(evaluation.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    (result,) = done.results
    assert result.truncated_prompts == 1, "the long essay was cut to fit, and counted"
    # An untrained model writes no JSON: its answers are unscored, never scored 0.
    assert result.unscored["score_mae"] == 2 and "score_mae" not in result.metrics
    assert result.pass_rates["bleu4"] == 1.0

    grader = (
        "def grade(sample, item):\n    return len(sample['output_text']) / max(1, len(item['reference']))\n"
    )
    graded = client.evals.create(
        [base_model], "essays", metrics=["bleu4"], max_new_tokens=4, python_grader=grader
    )
    assert list(graded.metrics) == ["bleu4", "python_grader"] and graded.python_grader.source == grader
    done = client.evals.wait(graded.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    (result,) = done.results
    assert result.metrics["python_grader"] > 0 and not result.unscored and not result.grader_errors
