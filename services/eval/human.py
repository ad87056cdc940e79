"""Rater agreement for human evaluation: exact pairwise agreement and Fleiss' kappa over the items
rated by two raters or more (scores and side-by-side choices are treated as categories)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations


def percent_agreement(items: Sequence[Sequence[str]]) -> float:
    """The share of rater pairs, over all items, that gave the same judgement."""
    pairs = agree = 0
    for judgements in items:
        for a, b in combinations(judgements, 2):
            pairs += 1
            agree += a == b
    return agree / pairs if pairs else 0.0


def fleiss_kappa(items: Sequence[Sequence[str]]) -> float:
    """Fleiss' kappa for items with varying numbers of raters (each at least two)."""
    rated = [list(j) for j in items if len(j) >= 2]
    if not rated:
        return 0.0
    categories = Counter(c for j in rated for c in j)
    total = sum(categories.values())
    expected = sum((n / total) ** 2 for n in categories.values())
    observed = 0.0
    for judgements in rated:
        n = len(judgements)
        counts = Counter(judgements)
        observed += (sum(c * c for c in counts.values()) - n) / (n * (n - 1))
    observed /= len(rated)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)
