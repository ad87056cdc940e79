"""Metric throughput: TuneForge's metrics module against calling the reference libraries directly
on the same Chinese and English pairs, in one run, for the full reference-based metric set
(BLEU-4, ROUGE-1/2/L, edit distance raw and normalized, chrF, corpus BLEU). The direct side computes
each reference definition once per pair (one ROUGE call for the three ROUGE scores, one Levenshtein
call for both distances), as the metrics module must.

    python bench/eval_metrics.py [--pairs 4000]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import jieba
import sacrebleu
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rapidfuzz.distance import Levenshtein
from rouge_chinese import Rouge

from services.data import presets
from services.eval import metrics


def pairs(count: int) -> list[tuple[str, str]]:
    rng = random.Random(0)
    texts = [
        m["content"]
        for r in presets.rows(presets.PRESETS["essay-grading"])["essay-grading-train"]
        for m in r["messages"]
    ]
    texts += [
        m["content"]
        for r in presets.rows(presets.PRESETS["spoken-english"])["spoken-english-train"]
        for m in r["messages"]
        if m["role"] == "assistant"
    ]
    return [(rng.choice(texts)[:200], rng.choice(texts)[:200]) for _ in range(count)]


METRICS = [
    "bleu4",
    "rouge_1",
    "rouge_2",
    "rouge_l",
    "edit_distance",
    "edit_distance_normalized",
    "chrf",
    "corpus_bleu",
]


def direct(items: list[tuple[str, str]]) -> None:
    rouge = Rouge()
    smoothing = SmoothingFunction().method3
    for prediction, reference in items:
        cjk = metrics.has_cjk(prediction + reference)  # one decision per pair
        hypothesis, target = (
            (list(prediction), list(reference)) if cjk else (prediction.split(), reference.split())
        )
        sentence_bleu([target], hypothesis, smoothing_function=smoothing)
        h = " ".join(jieba.cut(prediction)) if cjk else prediction
        r = " ".join(jieba.cut(reference)) if cjk else reference
        if h.strip() and r.strip():
            rouge.get_scores(h, r)
        distance = Levenshtein.distance(prediction, reference)
        _ = distance / max(len(prediction), len(reference), 1)
        sacrebleu.sentence_chrf(prediction, [reference])
    sacrebleu.corpus_bleu([p for p, _ in items], [[r for _, r in items]], tokenize="zh")


def ours(items: list[tuple[str, str]]) -> None:
    metrics.evaluate(METRICS, [metrics.Sample(p, r) for p, r in items])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=4000)
    args = parser.parse_args()
    items = pairs(args.pairs)
    list(jieba.cut("预热"))  # load jieba's dictionary outside the timings
    timings = {}
    for label, fn in (
        ("reference libraries", direct),
        ("tuneforge metrics", ours),
        ("reference libraries (again)", direct),
    ):
        start = time.perf_counter()
        fn(items)
        timings[label] = time.perf_counter() - start
    base = min(timings["reference libraries"], timings["reference libraries (again)"])
    print(f"{args.pairs} pairs (Chinese essays and English corrections): {', '.join(METRICS)}")
    for label, seconds in timings.items():
        print(f"  {label:<28} {seconds:6.2f} s  {args.pairs / seconds:8.0f} pairs/s  x{base / seconds:.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "eval_metrics.json").write_text(json.dumps(timings, indent=2))


if __name__ == "__main__":
    main()
