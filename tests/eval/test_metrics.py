"""Metric parity: every metric equals an independent computation with the reference libraries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jieba
import pytest
import sacrebleu
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rapidfuzz.distance import Levenshtein
from rouge_chinese import Rouge

from services.eval import metrics
from services.eval.metrics import Sample, evaluate

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "corpus.jsonl").read_text().splitlines()]
CJK = [r for r in CORPUS if metrics.has_cjk(r["reference"])]
LATIN = [r for r in CORPUS if not metrics.has_cjk(r["reference"])]


def reference_bleu(prediction: str, reference: str) -> float:
    if metrics.has_cjk(prediction + reference):  # LLaMA-Factory's: characters, method 3 (one rule a pair)
        hypothesis, target = list(prediction), list(reference)
    else:
        hypothesis, target = prediction.split(), reference.split()
    if not hypothesis or not target:
        return 0.0
    return 100 * sentence_bleu([target], hypothesis, smoothing_function=SmoothingFunction().method3)


def reference_rouge(prediction: str, reference: str) -> dict[str, float]:
    if metrics.has_cjk(prediction + reference):
        hypothesis, target = " ".join(jieba.cut(prediction)).split(), " ".join(jieba.cut(reference)).split()
    else:
        hypothesis, target = prediction.split(), reference.split()
    if not hypothesis or not target:
        return {"rouge_1": 0.0, "rouge_2": 0.0, "rouge_l": 0.0}
    scores = Rouge().get_scores(" ".join(hypothesis), " ".join(target))[0]
    return {f"rouge_{k[-1]}": 100 * v["f"] for k, v in scores.items()}


@pytest.mark.parametrize("row", CORPUS, ids=[r["reference"][:12] for r in CORPUS])
def test_sentence_metrics_match_the_reference_libraries(row: dict[str, str]) -> None:
    sample = Sample(row["prediction"], row["reference"], row.get("prompt", ""))
    assert math.isclose(
        metrics.score_one("bleu4", sample), reference_bleu(row["prediction"], row["reference"]), abs_tol=1e-6
    )
    expected = reference_rouge(row["prediction"], row["reference"])
    for name in ("rouge_1", "rouge_2", "rouge_l"):
        assert math.isclose(metrics.score_one(name, sample), expected[name], abs_tol=1e-6), name
    distance = Levenshtein.distance(row["prediction"], row["reference"])
    assert metrics.score_one("edit_distance", sample) == distance
    longest = max(len(row["prediction"]), len(row["reference"]))
    assert math.isclose(
        metrics.score_one("edit_distance_normalized", sample),
        distance / longest if longest else 0.0,
        abs_tol=1e-9,
    )


def test_corpus_bleu_matches_sacrebleu_with_the_right_tokenizer() -> None:
    summary = evaluate(["corpus_bleu"], [Sample(r["prediction"], r["reference"]) for r in CJK]).summary
    expected = sacrebleu.corpus_bleu(
        [r["prediction"] for r in CJK], [[r["reference"] for r in CJK]], tokenize="zh"
    ).score
    assert math.isclose(summary["corpus_bleu"], expected, abs_tol=1e-6)
    default = sacrebleu.corpus_bleu([r["prediction"] for r in CJK], [[r["reference"] for r in CJK]]).score
    assert expected > default, "13a treats unsegmented Chinese as few long words; zh segments characters"
    summary = evaluate(["corpus_bleu"], [Sample(r["prediction"], r["reference"]) for r in LATIN]).summary
    expected = sacrebleu.corpus_bleu(
        [r["prediction"] for r in LATIN], [[r["reference"] for r in LATIN]], tokenize="13a"
    ).score
    assert math.isclose(summary["corpus_bleu"], expected, abs_tol=1e-6)


def test_averages_and_identities() -> None:
    samples = [Sample(r["prediction"], r["reference"], r.get("prompt", "")) for r in CORPUS]
    scored = evaluate(["bleu4", "rouge_l", "exact_match"], samples)
    summary, per_sample = scored.summary, scored.per_sample
    assert math.isclose(
        summary["bleu4"],
        sum(reference_bleu(r["prediction"], r["reference"]) for r in CORPUS) / len(CORPUS),
        abs_tol=1e-6,
    )
    assert summary["exact_match"] == 2 / len(CORPUS)
    same = Sample("今天天气很好，适合出门散步。", "今天天气很好，适合出门散步。")
    assert math.isclose(metrics.score_one("bleu4", same), 100.0) and math.isclose(
        metrics.score_one("rouge_l", same), 100.0, abs_tol=1e-5
    )
    assert per_sample[4]["bleu4"] == 0.0 and per_sample[4]["rouge_l"] == 0.0, "an empty prediction scores 0"


def test_task_metrics() -> None:
    contract = CORPUS[7]
    # predicted non-null: 甲方 (right), 乙方 (wrong) -> precision 1/2; expected: 3 fields -> recall 1/3
    assert math.isclose(
        metrics.json_field_f1(contract["prediction"], contract["reference"]),
        2 * 0.5 * (1 / 3) / (0.5 + 1 / 3),
    )
    assert metrics.json_field_f1("not json", contract["reference"]) == 0.0
    assert math.isclose(metrics.label_f1("物流查询，退换货", "物流查询，退换货，优惠券"), 0.8)
    assert metrics.label_f1("优惠券、物流查询", "物流查询,优惠券") == 1.0
    essay = Sample(CORPUS[1]["prediction"], CORPUS[1]["reference"])
    assert metrics.score_one("score_accuracy", essay) == 0.0 and metrics.score_one("score_mae", essay) == 3.0
    assert metrics.score_one("score_accuracy", Sample(CORPUS[2]["prediction"], CORPUS[2]["reference"])) == 1.0
    assert metrics.word_count_deviation("一" * 45, "写一段恰好50个字的短文") == 0.1
    assert metrics.word_count_deviation("one two three", "Write exactly 4 words") == 0.25
    assert metrics.word_count_deviation("x", "no request here") is None
    assert metrics.check_metrics(["bleu4", "perplexity"]) == ["perplexity"]


def test_embedding_distance_matches_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    latin = [(r["prediction"], r["reference"]) for r in LATIN]
    scored = evaluate(["embedding_distance"], [Sample(p, r) for p, r in latin])
    summary, per_sample = scored.summary, scored.per_sample
    model = SentenceTransformer(metrics.default_embedding_model(), device="cpu")
    for (prediction, reference), row in zip(latin, per_sample, strict=True):
        a, b = model.encode([prediction, reference], normalize_embeddings=True)
        assert math.isclose(row["embedding_distance"], 1 - float(a @ b), abs_tol=1e-5)
    assert per_sample[latin.index(("Fine.", "Fine."))]["embedding_distance"] < 1e-5
    assert math.isclose(
        summary["embedding_distance"], sum(r["embedding_distance"] for r in per_sample) / len(per_sample)
    )
