"""Agreement between people who label the same items (human evaluation's raters, annotation's
reviewers) and between a model and people: exact pairwise agreement, Fleiss' kappa over the items
judged by two people or more, and Cohen's kappa between two labellers. Labels are categories
(scores included)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import combinations


def percent_agreement(items: Sequence[Sequence[Hashable]]) -> float:
    """The share of labeller pairs, over all items, that gave the same label."""
    pairs = agree = 0
    for judgements in items:
        for a, b in combinations(judgements, 2):
            pairs += 1
            agree += a == b
    return agree / pairs if pairs else 0.0


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> float:
    """Fleiss' kappa for items with varying numbers of labellers (each at least two)."""
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


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float:
    """Cohen's kappa between two labellers over `(first's label, second's label)` pairs; 1 when
    both always agree, 0 when they agree as often as chance would (and when there are no pairs)."""
    if not pairs:
        return 0.0
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] * second.get(c, 0) for c in first) / (n * n)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)
