"""Splits and mixtures (数据配比), deterministic for a given seed.

Sampling at rate r takes round(n × r) rows of a source of n rows: every row floor(r) times, plus a
seeded sample without replacement for the fraction. A mixture's `share` of a source is its share of
the mixture's characters, as Qianfan's 数据占比 shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.kit.rows import Kind, Row, characters


def split(rows: list[Row], validation_ratio: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Deterministic train/validation split: a seeded shuffle picks round(n × ratio) rows
    (at least one when the ratio is positive and there are two rows); each part keeps the order
    the rows had."""
    n = len(rows)
    count = round(n * validation_ratio)
    if validation_ratio > 0 and n >= 2:
        count = min(max(count, 1), n - 1)
    chosen = set(np.random.default_rng(seed).permutation(n)[:count].tolist())
    train = [row for i, row in enumerate(rows) if i not in chosen]
    validation = [row for i, row in enumerate(rows) if i in chosen]
    return train, validation


@dataclass(frozen=True)
class Source:
    label: str  # e.g. `essays/v3`, prefixed to row ids in the mixture
    rows: list[Row]
    sampling_rate: float


@dataclass(frozen=True)
class SourcePlan:
    label: str
    sampling_rate: float
    characters: int
    samples: int
    sampled_samples: int
    sampled_characters: int
    share: float
    indices: tuple[int, ...]  # rows taken, in order, repeats for upsampling


def sample_indices(n: int, rate: float, seed: int) -> list[int]:
    target = math.floor(n * rate + 0.5)
    whole, remainder = divmod(target, n) if n else (0, 0)
    indices = list(range(n)) * whole
    if remainder:
        indices += sorted(np.random.default_rng(seed).permutation(n)[:remainder].tolist())
    return indices


def plan(sources: list[Source], kind: Kind, seed: int) -> list[SourcePlan]:
    drafts = []
    for i, source in enumerate(sources):
        lengths = [characters(row, kind) for row in source.rows]
        indices = sample_indices(len(source.rows), source.sampling_rate, seed + i)
        drafts.append((source, lengths, indices, sum(lengths[j] for j in indices)))
    total = sum(d[3] for d in drafts) or 1
    return [
        SourcePlan(
            label=source.label,
            sampling_rate=source.sampling_rate,
            characters=sum(lengths),
            samples=len(source.rows),
            sampled_samples=len(indices),
            sampled_characters=sampled,
            share=sampled / total,
            indices=tuple(indices),
        )
        for source, lengths, indices, sampled in drafts
    ]


def materialize(sources: list[Source], plans: list[SourcePlan], seed: int) -> list[Row]:
    """The mixture's rows, shuffled with the seed; ids become `label:id` (`#k` on the k-th copy)."""
    rows: list[Row] = []
    for source, source_plan in zip(sources, plans, strict=True):
        copies: dict[int, int] = {}
        for index in source_plan.indices:
            copies[index] = copies.get(index, 0) + 1
            row = source.rows[index]
            suffix = f"#{copies[index]}" if copies[index] > 1 else ""
            rows.append({**row, "id": f"{source.label}:{row['id']}{suffix}"})
    order = np.random.default_rng(seed).permutation(len(rows)).tolist()
    return [rows[i] for i in order]
