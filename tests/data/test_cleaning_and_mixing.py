"""Cleaning operations row by row, PII patterns, splits and mixture arithmetic."""

from __future__ import annotations

import pytest

from services.data.cleaning import Operation, run_pipeline
from services.data.mixing import Source, materialize, plan, sample_indices, split
from services.kit import pii
from services.kit.rows import Kind


def sft(i: str, prompt: str, answer: str) -> dict:
    return {
        "id": i,
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
    }


def test_each_operation_row_by_row() -> None:
    rows = [
        sft("a", "今天天气怎么样？", "今天晴天，适合出门散步。"),
        sft("b", "今天天气怎么样？", "今天晴天，适合出门散步。"),  # exact duplicate of a
        sft("c", "今天天气怎么样呢？", "今天晴天，适合出门散步。"),  # near duplicate of a
        sft("d", "Write\u200b a   poem", "Roses  are red,\n\n\n\nviolets are blue"),
        sft("e", "联系我", "邮箱 li.lei@example.com，手机 13812345678，身份证 11010519491231002X"),
        sft("f", "spam", "click here to win $$$"),
        sft("g", "ok", "  "),
        sft("h", "ｆｕｌｌｗｉｄｔｈ", "x"),
    ]
    kept, reports = run_pipeline(
        rows,
        Kind.SFT,
        [
            Operation("exact_dedup"),
            Operation("near_dedup", {"threshold": 0.7, "shingle_size": 3, "num_perm": 128}),
            Operation("drop_empty"),
            Operation("normalize_unicode"),
            Operation("normalize_whitespace"),
            Operation("mask_pii", {"kinds": []}),
            Operation("keyword_filter", {"keywords": ["WIN $"]}),
            Operation("regex_filter", {"pattern": r"^fullwidth$", "keep_matching": False}),
            Operation(
                "length_filter", {"min_characters": 0, "max_characters": 1000, "min_response_characters": 2}
            ),
        ],
    )
    summary = {r.operation: (r.rows_in, r.rows_removed, r.rows_changed) for r in reports}
    assert summary == {
        "exact_dedup": (8, 1, 0),
        "near_dedup": (7, 1, 0),
        "drop_empty": (6, 1, 0),
        "normalize_unicode": (5, 0, 2),
        "normalize_whitespace": (5, 0, 1),
        "mask_pii": (5, 0, 1),
        "keyword_filter": (5, 1, 0),
        "regex_filter": (4, 0, 0),
        "length_filter": (4, 1, 0),
    }
    assert [r["id"] for r in kept] == ["a", "d", "e"]
    by_id = {r["id"]: r for r in kept}
    assert by_id["d"]["messages"] == [
        {"role": "user", "content": "Write a poem"},
        {"role": "assistant", "content": "Roses are red,\n\nviolets are blue"},
    ]
    assert by_id["e"]["messages"][1]["content"] == "邮箱 [EMAIL]，手机 [PHONE]，身份证 [CN_ID]"
    reports_by_name = {r.operation: r for r in reports}
    assert reports_by_name["exact_dedup"].examples == [{"id": "b", "duplicate_of": "a"}]
    assert reports_by_name["near_dedup"].examples == [{"id": "c", "near_duplicate_of": "a"}]
    assert reports_by_name["length_filter"].examples[0]["id"] == "h"


def test_cleaning_is_deterministic() -> None:
    rows = [sft(str(i), f"问题{i % 7}", f"回答{i % 5}，" + "内容" * (i % 3)) for i in range(200)]
    ops = [
        Operation("near_dedup", {"threshold": 0.8, "shingle_size": 2, "num_perm": 64}),
        Operation("exact_dedup"),
    ]
    first, _ = run_pipeline(rows, Kind.SFT, ops)
    second, _ = run_pipeline(list(rows), Kind.SFT, ops)
    assert first == second and 0 < len(first) < 200


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("mail me at a.b-c@mail.example.org now", {"email": 1}),
        ("+86 13912345678 or 15000000000", {"cn_mobile": 2}),
        ("call +1 415-555-0132", {"phone": 1}),
        ("ID 11010519491231002X", {"cn_id": 1}),
        ("ID 110105194912310021 (bad checksum)", {}),
        ("server 192.168.0.1 and 10.0.0.256", {"ip": 1}),
        ("card 4111 1111 1111 1111", {"bank_card": 1}),
        ("order 4111111111111112 (bad luhn)", {}),
    ],
)
def test_pii_patterns(text: str, found: dict[str, int]) -> None:
    assert pii.find(text) == found


def test_split_is_deterministic_and_disjoint() -> None:
    rows = [{"id": str(i), "text": str(i)} for i in range(100)]
    train, validation = split(rows, 0.2, seed=42)
    assert len(validation) == 20 and len(train) == 80
    assert {r["id"] for r in train}.isdisjoint({r["id"] for r in validation})
    assert split(rows, 0.2, seed=42) == (train, validation)
    assert split(rows, 0.2, seed=43)[1] != validation
    assert [int(r["id"]) for r in train] == sorted(int(r["id"]) for r in train), (
        "each part keeps the original order"
    )
    assert len(split(rows[:3], 0.01, seed=0)[1]) == 1, "a positive ratio gives at least one validation row"


def test_mixture_arithmetic() -> None:
    assert len(sample_indices(500, 0.1, 0)) == 50
    assert len(sample_indices(30, 0.1, 0)) == 3
    upsampled = sample_indices(10, 2.5, 0)
    assert len(upsampled) == 25 and all(upsampled.count(i) in (2, 3) for i in range(10))

    big = Source("users/v1", [{"id": str(i), "text": "字" * 10} for i in range(500)], 0.1)
    small = Source("novel/v1", [{"id": str(i), "text": "字" * 40} for i in range(30)], 0.1)
    plans = plan([big, small], Kind.TEXT, seed=7)
    assert [(p.samples, p.sampled_samples, p.characters, p.sampled_characters) for p in plans] == [
        (500, 50, 5000, 500),
        (30, 3, 1200, 120),
    ]
    assert [round(p.share, 4) for p in plans] == [round(500 / 620, 4), round(120 / 620, 4)]
    rows = materialize([big, small], plans, seed=7)
    assert len(rows) == 53 and sum(r["id"].startswith("novel/v1:") for r in rows) == 3
    assert materialize([big, small], plans, seed=7) == rows
    copies = materialize(
        [Source("s/v1", [{"id": "only", "text": "t"}], 3.0)],
        plan([Source("s/v1", [{"id": "only", "text": "t"}], 3.0)], Kind.TEXT, 0),
        0,
    )
    assert sorted(r["id"] for r in copies) == ["s/v1:only", "s/v1:only#2", "s/v1:only#3"]
