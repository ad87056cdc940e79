"""OpenAI's grader JSON as the platform runs it: each grader type on known answers, templates over
the sample and the row, a formula that can only compute, and every bad grader named by its field."""

from __future__ import annotations

import math

import pytest

from services.kit import graders
from services.kit.graders import GraderError, Sample

ITEM = {
    "reference": "Paris",
    "references": ["Paris"],
    "prompt": "Capital of France?",
    "reference_answer": "Paris",
}


def run(spec: dict, outputs: list[str], item: dict = ITEM, **kw) -> graders.Graded:
    return graders.grade(graders.check(spec), [Sample(o, item) for o in outputs], **kw)


def test_string_check_operations() -> None:
    base = {
        "type": "string_check",
        "name": "exact",
        "input": "{{ sample.output_text }}",
        "reference": "{{item.reference_answer}}",
    }
    outputs = ["Paris", "paris", "It is Paris.", "Lyon"]
    assert run({**base, "operation": "eq"}, outputs).scores == [1, 0, 0, 0]
    assert run({**base, "operation": "ne"}, outputs).scores == [0, 1, 1, 1]
    assert run({**base, "operation": "like"}, outputs).scores == [1, 0, 1, 0]
    assert run({**base, "operation": "ilike"}, outputs).scores == [1, 1, 1, 0]


@pytest.mark.parametrize("metric", graders.SIMILARITY)
def test_text_similarity_metrics_are_one_for_the_same_text_and_lower_otherwise(metric: str) -> None:
    spec = {
        "type": "text_similarity",
        "input": "{{sample.output_text}}",
        "reference": "{{item.reference}}",
        "evaluation_metric": metric,
    }
    item = {"reference": "the cat sat on the mat by the door today"}
    same, near, far = run(
        spec,
        [
            "the cat sat on the mat by the door today",
            "the cat sat on the mat by a door",
            "quantum chromodynamics",
        ],
        item,
    ).scores
    assert same == pytest.approx(1.0, abs=0.02), (metric, same)
    assert far < near < same + 1e-9, (metric, same, near, far)
    assert 0 <= far <= 1


def test_text_similarity_on_chinese_uses_cjk_tokens() -> None:
    spec = {
        "type": "text_similarity",
        "input": "{{sample.output_text}}",
        "reference": "{{item.reference}}",
        "evaluation_metric": "rouge_3",
    }
    scores = run(spec, ["今天北京天气很好", "明天上海下雨"], {"reference": "今天北京天气很好"}).scores
    assert scores[0] == pytest.approx(1.0) and scores[1] < 0.5


def test_rouge_n_agrees_with_rouge_chinese_where_both_exist() -> None:
    from services.kit import textmetrics

    pair = textmetrics.Pair.of("the quick brown fox jumps", "the quick red fox jumps high")
    assert textmetrics.rouge_n(pair, 1) == pytest.approx(pair.rouge["rouge_1"] / 100, abs=1e-6)
    assert textmetrics.rouge_n(pair, 2) == pytest.approx(pair.rouge["rouge_2"] / 100, abs=1e-6)


def test_templates_reach_json_output_and_missing_fields_are_unscored() -> None:
    spec = {
        "type": "string_check",
        "input": "{{ sample.output_json.city }}",
        "reference": "{{ item.reference_answer }}",
        "operation": "eq",
    }
    graded = run(spec, ['{"city": "Paris"}', "not json", '{"city": "Rome"}'])
    assert graded.scores == [1, None, 0]
    assert graded.errors == {"{{ sample.output_json.city }} is missing": 1}
    missing = run({**spec, "input": "{{sample.output_text}}", "reference": "{{item.answer}}"}, ["Paris"])
    assert missing.scores == [None] and "{{ item.answer }} is missing" in missing.errors


def test_python_grader_sees_sample_and_item() -> None:
    source = "def grade(sample, item):\n    return float(sample['output_text'].strip() == item['reference_answer'])\n"
    graded = run({"type": "python", "name": "py", "source": source}, ["Paris", "Lyon"])
    assert graded.scores == [1.0, 0.0]
    broken = run({"type": "python", "source": "def grade(sample, item):\n    return 1 / 0\n"}, ["x"])
    assert broken.scores == [None] and any("ZeroDivisionError" in e for e in broken.errors)


def test_multi_combines_graders_by_formula() -> None:
    spec = {
        "type": "multi",
        "name": "combined",
        "graders": {
            "exact": {
                "type": "string_check",
                "input": "{{sample.output_text}}",
                "reference": "{{item.reference}}",
                "operation": "ilike",
            },
            "fuzzy": {
                "type": "text_similarity",
                "input": "{{sample.output_text}}",
                "reference": "{{item.reference}}",
                "evaluation_metric": "fuzzy_match",
            },
        },
        "calculate_output": "0.5 * exact + 0.5 * fuzzy ^ 2",
    }
    scores = run(spec, ["Paris", "Lyon"]).scores
    assert scores[0] == pytest.approx(1.0)
    fuzzy = run(spec["graders"]["fuzzy"], ["Lyon"]).scores[0]
    assert scores[1] == pytest.approx(0.5 * fuzzy**2)
    divide = run({**spec, "calculate_output": "exact / (exact - exact)"}, ["Paris"])
    assert divide.scores == [None] and divide.errors


def test_score_model_asks_the_judge_and_reads_its_number() -> None:
    asked = []

    def judge(model, messages, sampling):  # a plain function standing for the judge's API here
        asked.append((model, messages[-1]["content"]))
        return {"Paris": '{"result": 0.9}', "Lyon": "I would give 0.2", "Rome": "no idea", "Nice": "7"}[
            messages[-1]["content"].split(":")[-1].strip()
        ]

    spec = {
        "type": "score_model",
        "name": "judge",
        "model": "grader-judge",
        "input": [
            {"role": "system", "content": "Score 0-1."},
            {"role": "user", "content": "Answer: {{sample.output_text}}"},
        ],
        "range": [0, 1],
    }
    graded = run(spec, ["Paris", "Lyon", "Rome", "Nice"], judge=judge)
    assert graded.scores == [0.9, 0.2, None, None]
    assert graded.errors == {
        "the judge's reply holds no number": 1,
        "the judge's score is outside the range [0, 1]": 1,
    }
    assert asked[0] == ("grader-judge", "Answer: Paris")
    unreachable = run(spec, ["Paris"], judge=graders.openai_judge("http://127.0.0.1:9/v1", timeout=2))
    assert unreachable.scores == [None] and "could not be reached" in next(iter(unreachable.errors))


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        ({"type": "nope"}, "g.type", "not a grader type"),
        ({"type": "label_model"}, "g.type", "not supported"),
        (
            {
                "type": "string_check",
                "input": "{{sample.output_text}}",
                "reference": "x",
                "operation": "regex",
            },
            "g.operation",
            "eq, ne, like, ilike",
        ),
        (
            {"type": "string_check", "input": "{{ os.environ }}", "reference": "x", "operation": "eq"},
            "g.input",
            "is not sample",
        ),
        (
            {"type": "text_similarity", "input": "a", "reference": "b", "evaluation_metric": "bertscore"},
            "g.evaluation_metric",
            "must be one of",
        ),
        (
            {
                "type": "text_similarity",
                "input": "a",
                "reference": "b",
                "evaluation_metric": "bleu",
                "pass_threshold": math.nan,
            },
            "g.pass_threshold",
            "finite",
        ),
        ({"type": "score_model", "input": [{"role": "user", "content": "x"}]}, "g.model", "required"),
        (
            {
                "type": "score_model",
                "model": "m",
                "input": [{"role": "user", "content": "x"}],
                "range": [1, 0],
            },
            "g.range",
            "low < high",
        ),
        ({"type": "python", "source": "import os\n"}, "g.source", "grade(sample, item)"),
        (
            {
                "type": "multi",
                "graders": {"a": {"type": "string_check", "input": "a", "reference": "a", "operation": "eq"}},
                "calculate_output": "__import__('os').system('x')",
            },
            "g.calculate_output",
            "not allowed",
        ),
        (
            {
                "type": "multi",
                "graders": {"a": {"type": "string_check", "input": "a", "reference": "a", "operation": "eq"}},
                "calculate_output": "a + b",
            },
            "g.calculate_output",
            "'b' is not one of the graders",
        ),
        (
            {"type": "multi", "graders": {"a": {"type": "nope"}}, "calculate_output": "a"},
            "g.graders.a.type",
            "not a grader type",
        ),
    ],
)
def test_bad_graders_name_their_field(spec: dict, field: str, says: str) -> None:
    with pytest.raises(GraderError) as caught:
        graders.check(spec, "g")
    assert caught.value.field == field and says in caught.value.message, caught.value


def test_a_grader_given_as_text_must_be_json() -> None:
    with pytest.raises(GraderError, match="is not JSON"):
        graders.check("{type: string_check", "g")
