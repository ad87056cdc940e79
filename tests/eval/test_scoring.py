"""Scores read as graders write them, metrics that hold on hostile answers, and the graders users expect."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import sacrebleu
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from nltk.translate.meteor_score import meteor_score

from services.eval import metrics
from services.eval.metrics import Sample, evaluate
from services.eval.scores import ScoreRule, check_rule, score_of

# The shape of Qianfan's essay-grading output: sub-scores first, the final score last.
QIANFAN = json.dumps(
    {
        "内容": {"得分": "14分", "评语": "切题"},
        "表达": {"得分": "12分", "评语": "通顺"},
        "结构": {"得分": "10分"},
        "最终得分": 36,
        "总评": "中等偏上",
    },
    ensure_ascii=False,
)


def test_the_final_score_is_read_not_the_first_sub_score() -> None:
    assert score_of(QIANFAN) == 36.0
    assert score_of("```json\n" + QIANFAN + "\n```") == 36.0, "a fenced JSON answer"
    assert score_of('{"得分": {"内容": 14, "表达": 12}, "得分": "36分"}') == 36.0, "the last score field"
    assert score_of("内容得分：14分，表达得分：12分。最终得分：36分") == 36.0
    assert score_of("总分: 41") == 41.0 and score_of("Final score: 7.5 / 10") == 7.5
    assert score_of("得分：48分\n评语：结构完整") == 48.0, "plain text with one score still reads"
    assert score_of("这篇作文写得不错，但没有给分") is None
    assert score_of('{"评语": "没有分数"}') is None


def test_the_rule_is_configurable_and_checked() -> None:
    answer = "sub 3, sub 4, TOTAL=[17] and more"
    assert score_of(answer) == 3.0, "the default falls back to the first number"
    assert score_of(answer, ScoreRule(regex=r"TOTAL=\[(\d+)\]")) == 17.0
    assert score_of(QIANFAN, ScoreRule(json_path="内容.得分")) == 14.0
    assert score_of('{"scores": [{"v": 1}, {"v": 2}]}', ScoreRule(json_path="scores[1].v")) == 2.0
    assert score_of(QIANFAN, ScoreRule(json_path="nowhere.total")) is None
    assert "not both" in check_rule(ScoreRule(regex="x", json_path="y"))
    assert "valid regular expression" in check_rule(ScoreRule(regex="(unclosed"))
    assert "one group" in check_rule(ScoreRule(regex=r"(\d+)-(\d+)"))
    assert "JSON path" in check_rule(ScoreRule(json_path="a..b"))
    assert check_rule(ScoreRule(json_path="items[2].score")) == ""


def test_answers_without_a_score_are_counted_never_scored_zero() -> None:
    samples = [
        Sample(QIANFAN, "最终得分：36"),
        Sample("写得很好", "最终得分：40"),  # no score in the answer
        Sample("最终得分：30", "最终得分：40"),
    ]
    scored = evaluate(["score_mae", "score_accuracy"], samples)
    assert scored.summary["score_mae"] == 5.0, "(0 + 10) / 2: the unscored answer is left out"
    assert scored.summary["score_accuracy"] == 0.5
    assert scored.unscored == {"score_mae": 1, "score_accuracy": 1}
    assert scored.per_sample[1]["score_mae"] is None
    nothing = evaluate(["score_mae"], [Sample("no score", "no score either")])
    assert "score_mae" not in nothing.summary and nothing.unscored == {"score_mae": 1}


def test_cjk_detection_covers_kana_hangul_and_extension_planes() -> None:
    for text in ("ひらがなとカタカナ", "한국어 문장", "\U00020000\U0002a700", "ｶﾀｶﾅ"):
        assert metrics.has_cjk(text), text
    assert not metrics.has_cjk("plain English, café")
    prediction, reference = "きょうはいいてんきですね", "きょうはとてもいいてんきです"
    expected = 100 * sentence_bleu(
        [list(reference)], list(prediction), smoothing_function=SmoothingFunction().method3
    )
    bleu = metrics.score_one("bleu4", Sample(prediction, reference))
    assert bleu > 30 and math.isclose(bleu, expected, abs_tol=1e-9), "kana is scored by characters"


def test_one_tokenization_decision_per_pair() -> None:
    # An English answer to a Chinese reference: both sides are read as CJK (characters for BLEU,
    # jieba for ROUGE), never one side by words and the other by characters.
    pair = metrics.Pair.of("the answer is 北京", "答案是北京")
    assert pair.cjk and pair.tokens == (list("the answer is 北京"), list("答案是北京"))
    assert pair.words[0] == metrics.words("the answer is 北京", cjk=True)
    reverse = metrics.Pair.of("答案是北京", "the answer is 北京")
    assert reverse.cjk, "the decision does not depend on which side holds the CJK text"


@pytest.mark.parametrize("size", [20_000, 100_000])
def test_long_hostile_answers_score_quickly(size: int) -> None:
    answers = [
        "得分" + " " * size + "x",  # the old score regex backtracked here
        "{" * size,  # unbalanced JSON
        "9" * size,  # a very long number
        "写" + "1" * size + "字",  # the old word-count request regex
    ]
    started = time.monotonic()
    for answer in answers:
        sample = Sample(answer, "最终得分：10", prompt=answer)
        evaluate(["score_mae", "word_count_deviation", "json_field_f1", "bleu4", "rouge_l"], [sample])
    assert time.monotonic() - started < 10, "linear-time patterns and capped lengths"


def test_megabyte_pairs_are_capped_and_counted() -> None:
    big = "模型训练需要高质量的数据。" * 80_000  # ~1 MB
    started = time.monotonic()
    scored = evaluate(["rouge_l", "edit_distance", "bleu4"], [Sample(big, big[::-1]), Sample("短", "短")])
    assert time.monotonic() - started < 10
    assert scored.capped == 1
    assert scored.per_sample[0]["edit_distance"] <= metrics.MAX_CHARS


def test_numbers_and_sets_that_cannot_be_scored_are_refused_or_left_out() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        metrics.corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no samples"):
        evaluate(["bleu4"], [])
    assert score_of("得分：" + "9" * 400) is None, "400 digits is not a score (it was NaN)"
    assert score_of('{"最终得分": 1e999}') is None
    assert score_of("[" * 5000 + "得分：3" + "]" * 5000) == 3.0, "deep nesting falls back to the text"
    deep = '{"a":' * 3000 + "1" + "}" * 3000
    assert metrics.json_field_f1(deep, '{"a": 1}') == 0.0


def test_string_check_regex_and_pass_thresholds() -> None:
    samples = [
        Sample("The capital is Paris.", "paris"),
        Sample("It is Paris", "Paris"),
        Sample("Lyon", "Paris"),
    ]
    scored = evaluate(["string_eq", "string_ne", "string_like", "string_ilike"], samples)
    assert scored.summary["string_like"] == 1 / 3 and scored.summary["string_ilike"] == 2 / 3
    assert scored.summary["string_ne"] == 1.0 and scored.summary["string_eq"] == 0.0
    regexes = [
        Sample("order #12345 shipped", r"#\d{5}\b"),
        Sample("order 12", r"#\d{5}"),
        Sample("x", "(bad"),
    ]
    scored = evaluate(["regex_match"], regexes)
    assert [r["regex_match"] for r in scored.per_sample] == [1.0, 0.0, None]
    assert scored.unscored == {"regex_match": 1}, "an invalid pattern is unscored, not a failure"
    graded = evaluate(
        ["bleu4", "edit_distance"],
        [Sample("a b c d e", "a b c d e"), Sample("x y", "a b c d e")],
        pass_thresholds={"bleu4": 50, "edit_distance": 2},
    )
    assert graded.pass_rates == {"bleu4": 0.5, "edit_distance": 0.5}, "lower is better for edit distance"


def test_chrf_and_meteor_match_their_libraries() -> None:
    prediction, reference = "the cat sat on the mat", "the cat is sitting on the mat"
    sample = Sample(prediction, reference)
    assert math.isclose(
        metrics.score_one("chrf", sample),
        sacrebleu.sentence_chrf(prediction, [reference]).score,
        abs_tol=1e-9,
    )

    class NoSynonyms:
        def synsets(self, *_: object, **__: object) -> list[object]:
            return []

    expected = 100 * meteor_score([reference.split()], prediction.split(), wordnet=NoSynonyms())
    assert math.isclose(metrics.score_one("meteor", sample), expected, abs_tol=1e-9)
    assert 0 < expected < 100


def test_several_references() -> None:
    references = ("the cat sat on the mat", "a cat was sitting on the mat")
    prediction = "a cat was sitting on the mat"
    several = Sample(prediction, references[0], references=references)
    one = Sample(prediction, references[0])
    assert metrics.score_one("rouge_l", several) > 99.99 > metrics.score_one("rouge_l", one)
    assert metrics.score_one("exact_match", several) == 1.0 and metrics.score_one("exact_match", one) == 0.0
    expected = 100 * sentence_bleu(
        [r.split() for r in references], prediction.split(), smoothing_function=SmoothingFunction().method3
    )
    assert math.isclose(metrics.score_one("bleu4", several), expected, abs_tol=1e-9)
    assert math.isclose(
        metrics.score_one("chrf", several), sacrebleu.sentence_chrf(prediction, list(references)).score
    )
    chinese = Sample("北京是首都", "首都是北京", references=("首都是北京", "北京是首都"))
    assert metrics.score_one("rouge_1", chinese) == metrics.score_one(
        "rouge_1", Sample("北京是首都", "北京是首都")
    )


GRADER = """
import json

def grade(sample, item):
    text = sample["output_text"]
    if text == "net":
        import socket
        socket.create_connection(("127.0.0.1", 22), timeout=1)
    if text == "raw-net":
        import _socket
        _socket.socket().connect(("127.0.0.1", 22))
    if text == "spawn":
        import os
        os.system("true")
    if text == "write":
        open("/tmp/tuneforge-grader-escape.txt", "w").write("x")
    if text == "loop":
        while True:
            pass
    if text == "memory":
        block = bytearray(3 << 30)
    if text == "nan":
        return float("nan")
    return float(text.strip() in item["references"])
"""


def test_python_grader_runs_sandboxed_with_limits() -> None:
    from services.kit import sandbox

    assert sandbox.check(GRADER) == ""
    assert sandbox.check("def grade(:\n  pass") == "line 1: invalid syntax"
    assert "grade(sample, item)" in sandbox.check("x = 1")
    assert "two arguments" in sandbox.check("def grade(sample):\n    return 1")
    answers = ["4", "four", "5", "net", "raw-net", "spawn", "write", "loop", "memory", "nan"]
    samples = [Sample(a, "4", "2+2?", references=("4", "four")) for a in answers]
    started = time.monotonic()
    scored = evaluate(
        ["python_grader"], samples, python_grader={"source": GRADER, "timeout_seconds": 0.5, "memory_mb": 512}
    )
    assert time.monotonic() - started < 20
    assert [r["python_grader"] for r in scored.per_sample] == [1.0, 1.0, 0.0] + [None] * 7
    assert scored.unscored == {"python_grader": 7} and scored.summary["python_grader"] == 2 / 3
    errors = " | ".join(scored.grader_errors)
    for refused in (
        "socket",
        "os.system",
        "writing /tmp/tuneforge-grader-escape.txt",
        "timed out",
        "MemoryError",
    ):
        assert refused in errors, (refused, scored.grader_errors)
    assert not Path("/tmp/tuneforge-grader-escape.txt").exists()
    broken = evaluate(
        ["python_grader"], samples[:2], python_grader={"source": "def grade(s, i):\n    return 1/0"}
    )
    assert broken.unscored == {"python_grader": 2} and "ZeroDivisionError" in next(iter(broken.grader_errors))
