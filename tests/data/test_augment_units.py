"""The pure parts of augmentation and annotation: sealed keys, templates against rows, filters,
teacher replies, model labels, review decisions and agreement."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.data import annotation_labels as labels
from services.data import augment_templates as templates
from services.data.augment_filters import Filters, Generated, check_filters, dedup, format_problem
from services.data.teacher_calls import ReplyError, parse_reply
from services.kit.agreement import cohen_kappa, fleiss_kappa
from services.kit.errors import InvalidArgument
from services.kit.rows import Kind
from services.kit.sealing import SealBroken, SecretBox


def test_sealed_keys_open_only_with_their_secret_and_owner() -> None:
    box = SecretBox("a-secret-key-of-32-characters!!", "teacher-api-key")
    sealed = box.seal("sk-123", "uid-1")
    assert "sk-123" not in sealed and box.open(sealed, "uid-1") == "sk-123"
    assert box.seal("sk-123", "uid-1") != sealed, "every seal is fresh (random IV)"
    with pytest.raises(SealBroken):
        box.open(sealed, "uid-2")  # copied onto another teacher
    with pytest.raises(SealBroken):
        SecretBox("another-secret-key-entirely-00", "teacher-api-key").open(sealed, "uid-1")
    with pytest.raises(SealBroken):
        SecretBox("a-secret-key-of-32-characters!!", "judge-api-key").open(sealed, "uid-1")
    with pytest.raises(SealBroken):
        box.open(sealed[:-4] + "AAAA", "uid-1")


EVAL_ROWS = [
    {
        "id": "a",
        "prompt": [{"role": "user", "content": "2+2?"}],
        "reference": "4",
        "fields": json.dumps({"topic": "math"}),
    },
    {"id": "b", "prompt": [{"role": "user", "content": "3+3?"}], "reference": "6", "fields": json.dumps({})},
]


def test_templates_are_checked_against_the_rows_naming_template_field_and_row() -> None:
    used = templates.check({}, ["answer", "judge"], EVAL_ROWS, Kind.EVAL)
    assert used["answer"] == "{{ prompt }}" and "{{ rubric }}" in used["judge"]
    with pytest.raises(templates.TemplateError, match=r"fields.topic .*row 'b' lacks"):
        templates.check({"answer": "{{ prompt }} about {{ fields.topic }}"}, ["answer"], EVAL_ROWS, Kind.EVAL)
    assert templates.check({"answer": "{{ fields.topic }}"}, ["answer"], EVAL_ROWS[:1], Kind.EVAL)
    with pytest.raises(templates.TemplateError, match="not a field of eval rows"):
        templates.check({"answer": "{{ chosen }}"}, ["answer"], EVAL_ROWS, Kind.EVAL)
    with pytest.raises(templates.TemplateError, match="no template is named"):
        templates.check({"nope": "x"}, ["answer"], EVAL_ROWS, Kind.EVAL)
    with pytest.raises(templates.TemplateError, match="does not use"):
        templates.check({"translate": "{{ text }}"}, ["answer"], EVAL_ROWS, Kind.EVAL)
    with pytest.raises(templates.TemplateError, match="not a field name"):
        templates.check({"answer": "{{ __class__.mro }}"}, ["answer"], EVAL_ROWS, Kind.EVAL)
    assert templates.render("Q: {{ prompt }}", {"prompt": "{{ x }}"}) == "Q: {{ x }}", (
        "values are not templates"
    )


def test_filters_are_checked_by_field_and_drop_by_reason() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_filters(
            {"regex": "(", "judge_min_score": 0, "near_dedup_threshold": 0.2, "json_schema": "{"}, "f"
        )
    assert {v.field for v in caught.value.violations} == {
        "f.regex",
        "f.judge_min_score",
        "f.near_dedup_threshold",
        "f.json_schema",
    }
    schema = check_filters({"json_schema": json.dumps({"type": "object", "required": ["score"]})}, "f")
    assert format_problem('{"score": 3}', schema) is None
    assert format_problem('```json\n{"score": 3}\n```', schema) is None, "a fenced JSON answer is JSON"
    assert format_problem('{"grade": 3}', schema)[0] == "JSON_SCHEMA"
    assert format_problem("score 3", schema)[0] == "NOT_JSON"
    assert format_problem('{"a": 1}', Filters(required_fields=("b",)))[0] == "MISSING_FIELDS"
    assert format_problem("  ", Filters())[0] == "EMPTY"
    assert format_problem("short", Filters(min_characters=10))[0] == "TOO_SHORT"
    assert format_problem("x" * 11, Filters(max_characters=10))[0] == "TOO_LONG"
    assert format_problem("得分：8分", Filters(pattern=r"得分：\d+")) is None
    assert format_problem("no score", Filters(pattern=r"得分：\d+"))[0] == "REGEX"


def test_dedup_against_the_source_and_each_other() -> None:
    source = [
        {
            "id": "s",
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}],
        }
    ]

    def made(i: int, answer: str) -> Generated:
        row = {
            "id": f"g{i}",
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": answer}],
        }
        return Generated(row, "s", answer)

    generated = [
        made(0, "hello   there"),  # the source, but for whitespace
        made(1, "a fresh answer about the weather today"),
        made(2, "a fresh answer about the weather today"),
        made(3, "a fresh answer about the weather today!"),
    ]
    kept, dropped = dedup(generated, Kind.SFT, source, Kind.SFT, Filters(exact_dedup=True))
    assert [g.row["id"] for g in kept] == ["g1", "g3"]
    assert [(r.generated.row["id"], r.reason) for r in dropped] == [
        ("g0", "EXACT_DUPLICATE"),
        ("g2", "EXACT_DUPLICATE"),
    ]
    assert "source row s" in dropped[0].detail
    kept, dropped = dedup(
        generated, Kind.SFT, source, Kind.SFT, Filters(exact_dedup=True, near_dedup_threshold=0.7)
    )
    assert [g.row["id"] for g in kept] == ["g1"] and dropped[-1].reason == "NEAR_DUPLICATE"


def test_teacher_replies_that_are_not_chat_completions_are_bad_replies() -> None:
    good = parse_reply(
        json.dumps(
            {
                "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3},
            }
        ).encode(),
        "u",
    )
    assert good.text == "hi" and good.prompt_tokens == 3 and good.completion_tokens == 0
    for garbage in (
        b"<html>502</html>",
        b"{}",
        b'{"choices": []}',
        b'{"choices": [{"message": {"content": 3}}]}',
    ):
        with pytest.raises(ReplyError) as caught:
            parse_reply(garbage, "http://teacher/v1/chat/completions")
        assert caught.value.reason == "BAD_REPLY"


def test_model_labels_are_read_or_refused() -> None:
    score = labels.TaskShape("score", score_min=1, score_max=5)
    assert labels.parse_model_label(score, "Score: 4\nclear and correct") == {"score": 4}
    assert labels.parse_model_label(score, "评分：2") == {"score": 2}
    with pytest.raises(labels.LabelError, match="outside 1-5"):
        labels.parse_model_label(score, "Score: 9")
    with pytest.raises(labels.LabelError):
        labels.parse_model_label(score, "great answer")
    label = labels.TaskShape("label", labels=("spam", "ham"))
    assert labels.parse_model_label(label, "Label: Spam\nbecause") == {"label": "spam"}
    assert labels.parse_model_label(label, "ham") == {"label": "ham"}
    with pytest.raises(labels.LabelError):
        labels.parse_model_label(label, "Label: spam or ham")
    choice = labels.TaskShape("choice")
    assert labels.parse_model_label(choice, "[[B]] is better") == {"choice": "B"}
    with pytest.raises(labels.LabelError):
        labels.parse_model_label(choice, "[[C]]")
    assert labels.check_value(score, {"score": 5}) == {"score": 5}
    with pytest.raises(labels.LabelError):
        labels.check_value(score, {"label": "spam"})
    with pytest.raises(labels.LabelError):
        labels.check_value(label, {"label": "eggs"})


def test_reviews_decide_by_majority_and_agreement_is_measured() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def review(who: str, action: str, value: dict, minutes: int) -> labels.Review:
        return labels.Review(who, action, value, t0 + timedelta(minutes=minutes))

    assert labels.decide([]) == ("unreviewed", {})
    two_to_one = [
        review("a", "edit", {"score": 3}, 0),
        review("b", "reject", {}, 1),
        review("c", "edit", {"score": 3}, 2),
    ]
    assert labels.decide(two_to_one) == ("kept", {"score": 3})
    tie = [review("a", "edit", {"score": 3}, 0), review("b", "reject", {}, 5)]
    assert labels.decide(tie) == ("rejected", {}), "a tie goes to the latest review"
    items = [
        ({"score": 4}, [review("a", "accept", {"score": 4}, 0), review("b", "edit", {"score": 2}, 1)]),
        ({"score": 4}, [review("a", "accept", {"score": 4}, 0)]),
        ({}, [review("a", "edit", {"score": 1}, 0)]),
        ({"score": 5}, []),
    ]
    found = labels.agreement("score", items)
    assert found.reviewed_items == 3 and found.model_reviews == 3 and found.multi_reviewed_items == 1
    assert found.model_agreement == pytest.approx(2 / 3) and found.model_score_mae == pytest.approx(2 / 3)
    assert found.reviewer_agreement == 0.0 and found.reviews_by_action == {"accept": 2, "edit": 2}


def test_kappas_match_textbook_values() -> None:
    # Cohen's kappa, the two-rater yes/no table 20/5/10/15 of 50: po = 0.7, pe = 0.5, kappa = 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("a", "a"), ("b", "b")]) == 1.0 and cohen_kappa([]) == 0.0
    assert fleiss_kappa([["a", "a"], ["b", "b"]]) == 1.0
