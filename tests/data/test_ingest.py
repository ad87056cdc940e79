"""Every accepted format and schema, for every kind, normalized to the canonical form."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.data.formats import Format
from services.data.ingest import IngestOptions, Policy, ingest_file
from services.data.schemas import Schema
from services.kit.rows import Kind

U = "user"
A = "assistant"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def jsonl(records: list[object]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def ingest(path: Path, kind: Kind, **options: object):  # type: ignore[no-untyped-def]
    result = ingest_file(path, kind, IngestOptions(filename=path.name, **options))  # type: ignore[arg-type]
    assert not result.errors, [e.as_dict() for e in result.errors]
    return result


# LLaMA-Factory's demo files as they ship (data/alpaca_zh_demo.json, glaive/sharegpt, dpo, kto).
ALPACA_DEMO = [
    {
        "instruction": "识别并解释给定列表中的两个科学理论：细胞理论和日心说。",
        "input": "",
        "output": "细胞理论是生物科学的一个理论……",
    },
    {
        "instruction": "输入三支篮球队的名称并生成一个适当的口号。",
        "input": "输入：俄克拉荷马城雷霆队，芝加哥公牛队，布鲁克林网队。",
        "output": '输出： "雷霆，公牛和网队：各显神通，角逐群雄!"',
    },
    {
        "instruction": "How are you?",
        "input": "",
        "output": "Fine.",
        "system": "Be brief.",
        "history": [["Hi", "Hello!"]],
    },
]
SHAREGPT_DEMO = [
    {
        "conversations": [
            {"from": "human", "value": "Hi, I need help with a loan."},
            {"from": "gpt", "value": "Of course. What is the amount?"},
            {"from": "human", "value": "$50000 at 5% for 10 years."},
            {"from": "gpt", "value": "Your monthly payment would be $530.33."},
        ],
        "system": "You are a helpful assistant.",
        "tools": "[]",
    }
]


def test_alpaca_json_as_llama_factory_ships_it(tmp_path: Path) -> None:
    result = ingest(
        write(tmp_path, "alpaca_zh_demo.json", json.dumps(ALPACA_DEMO, ensure_ascii=False, indent=2)),
        Kind.SFT,
    )
    assert (result.format, result.schema) == (Format.JSON, Schema.ALPACA)
    assert result.rows[1]["messages"] == [
        {
            "role": U,
            "content": "输入三支篮球队的名称并生成一个适当的口号。\n输入：俄克拉荷马城雷霆队，芝加哥公牛队，布鲁克林网队。",
        },
        {"role": A, "content": '输出： "雷霆，公牛和网队：各显神通，角逐群雄!"'},
    ]
    assert [m["role"] for m in result.rows[2]["messages"]] == ["system", U, A, U, A]
    assert [r["id"] for r in result.rows] == [
        "alpaca_zh_demo.json#1",
        "alpaca_zh_demo.json#2",
        "alpaca_zh_demo.json#3",
    ]


def test_sharegpt_json_with_system(tmp_path: Path) -> None:
    result = ingest(
        write(tmp_path, "glaive_toolcall_en_demo.json", json.dumps(SHAREGPT_DEMO, indent=2)), Kind.SFT
    )
    assert result.schema == Schema.SHAREGPT
    messages = result.rows[0]["messages"]
    assert messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert [m["role"] for m in messages[1:]] == [U, A, U, A]


def test_openai_chat_jsonl_with_system_messages(tmp_path: Path) -> None:
    records = [
        {
            "messages": [
                {"role": "system", "content": "Marv is a sarcastic chatbot."},
                {"role": U, "content": "Capital of France?"},
                {"role": A, "content": "Paris, as if you didn't know."},
            ]
        },
        {
            "messages": [{"role": U, "content": "Who wrote Hamlet?"}, {"role": A, "content": "Shakespeare."}],
            "id": 17,
        },
    ]
    result = ingest(write(tmp_path, "openai.jsonl", jsonl(records)), Kind.SFT)
    assert result.schema == Schema.OPENAI_CHAT and result.rows[1]["id"] == "17"
    assert result.rows[0]["messages"] == records[0]["messages"]


def test_qianfan_multi_turn_and_variants(tmp_path: Path) -> None:
    sft = [
        [
            {"system": "你是客服", "prompt": "你好", "response": [["您好，请问有什么可以帮您？"]]},
            {"prompt": "查物流", "response": [["请提供订单号。"]]},
        ]
    ]
    result = ingest(write(tmp_path, "qianfan.jsonl", jsonl(sft)), Kind.SFT)
    assert result.schema == Schema.QIANFAN
    assert [m["role"] for m in result.rows[0]["messages"]] == ["system", U, A, U, A]
    dpo = [[{"prompt": "写一句问候", "response": [["早上好，祝你今天顺利！"], ["嗯。"]]}]]
    row = ingest(write(tmp_path, "qianfan_dpo.jsonl", jsonl(dpo)), Kind.PREFERENCE).rows[0]
    assert row["chosen"][0]["content"] == "早上好，祝你今天顺利！" and row["rejected"][0]["content"] == "嗯。"
    kto = [[{"prompt": "你是谁", "response": [["俺老孙是也"]], "label": True}]]
    row = ingest(write(tmp_path, "qianfan_kto.jsonl", jsonl(kto)), Kind.UNPAIRED_PREFERENCE).rows[0]
    assert row["label"] is True and row["completion"] == [{"role": A, "content": "俺老孙是也"}]
    # A Qianfan file may also be one JSON array of samples.
    assert (
        ingest(
            write(tmp_path, "qianfan_array.json", json.dumps(sft * 3, ensure_ascii=False)), Kind.SFT
        ).records
        == 3
    )


def test_trl_standard_and_conversational_forms(tmp_path: Path) -> None:
    pc = ingest(write(tmp_path, "pc.jsonl", jsonl([{"prompt": "2+2=", "completion": "4"}])), Kind.SFT).rows[0]
    assert pc["messages"] == [{"role": U, "content": "2+2="}, {"role": A, "content": "4"}]
    conversational = {
        "prompt": [{"role": U, "content": "Color of the sky?"}],
        "chosen": [{"role": A, "content": "Blue."}],
        "rejected": [{"role": A, "content": "Green."}],
    }
    pref = ingest(
        write(
            tmp_path,
            "pref.jsonl",
            jsonl([conversational, {"prompt": "p", "chosen": "good", "rejected": "bad"}]),
        ),
        Kind.PREFERENCE,
    )
    assert pref.rows[0]["chosen"] == [{"role": A, "content": "Blue."}] and pref.rows[1]["prompt"] == [
        {"role": U, "content": "p"}
    ]
    kto = ingest(
        write(tmp_path, "kto.jsonl", jsonl([{"prompt": "p", "completion": "c", "label": False}])),
        Kind.UNPAIRED_PREFERENCE,
    )
    assert kto.rows[0]["label"] is False
    rl = ingest(
        write(tmp_path, "rl.jsonl", jsonl([{"prompt": "1+1?", "answer": "2"}, {"prompt": "hi"}])),
        Kind.PROMPT_ONLY,
    )
    assert [r["reference"] for r in rl.rows] == ["2", ""]
    ev = ingest(
        write(
            tmp_path,
            "ev.jsonl",
            jsonl(
                [
                    {"prompt": "q", "reference": "r"},
                    {"messages": [{"role": U, "content": "q2"}, {"role": A, "content": "r2"}]},
                ][:1]
            ),
        ),
        Kind.EVAL,
    )
    assert ev.rows[0] == {"id": "ev.jsonl:1", "prompt": [{"role": U, "content": "q"}], "reference": "r"}


def test_sft_data_serves_as_eval_with_the_last_assistant_turn(tmp_path: Path) -> None:
    records = [
        {
            "messages": [
                {"role": U, "content": "a"},
                {"role": A, "content": "b"},
                {"role": U, "content": "c"},
                {"role": A, "content": "d"},
            ]
        }
    ]
    row = ingest(write(tmp_path, "chat.jsonl", jsonl(records)), Kind.EVAL).rows[0]
    assert row["reference"] == "d" and [m["content"] for m in row["prompt"]] == ["a", "b", "c"]


def test_llama_factory_preference_and_kto_shapes(tmp_path: Path) -> None:
    dpo = [
        {
            "conversations": [{"from": "human", "value": "q"}],
            "chosen": {"from": "gpt", "value": "good"},
            "rejected": {"from": "gpt", "value": "bad"},
        }
    ]
    row = ingest(write(tmp_path, "dpo_en_demo.json", json.dumps(dpo)), Kind.PREFERENCE).rows[0]
    assert row["chosen"][0]["content"] == "good"
    alpaca_dpo = [{"instruction": "q", "input": "", "chosen": "good", "rejected": "bad"}]
    assert (
        ingest(write(tmp_path, "alpaca_dpo.json", json.dumps(alpaca_dpo)), Kind.PREFERENCE).rows[0][
            "rejected"
        ][0]["content"]
        == "bad"
    )
    kto = [
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "kto_tag": False}
    ]
    assert (
        ingest(write(tmp_path, "kto_en_demo.json", json.dumps(kto)), Kind.UNPAIRED_PREFERENCE).rows[0][
            "label"
        ]
        is False
    )


def test_csv_parquet_text_and_gzip(tmp_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["instruction", "input", "output"])
    writer.writerow(["翻译", "apple, banana", "苹果，香蕉"])
    writer.writerow(["multi\nline", "", "ok"])
    result = ingest(write(tmp_path, "data.csv", buffer.getvalue()), Kind.SFT)
    assert result.format == Format.CSV and [r["id"] for r in result.rows] == ["data.csv:2", "data.csv:3"]
    assert result.rows[0]["messages"][0]["content"] == "翻译\napple, banana"

    table = pa.Table.from_pylist([{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}])
    sink = io.BytesIO()
    pq.write_table(table, sink)
    result = ingest(write(tmp_path, "data.parquet", sink.getvalue()), Kind.SFT)
    assert result.format == Format.PARQUET and [r["id"] for r in result.rows] == [
        "data.parquet#1",
        "data.parquet#2",
    ]

    result = ingest(
        write(tmp_path, "corpus.txt", "第一篇文章。\n第二行。\n\n\nSecond document.\n"), Kind.TEXT
    )
    assert [r["text"] for r in result.rows] == ["第一篇文章。\n第二行。", "Second document."]
    assert result.rows[1]["id"] == "corpus.txt:5"

    result = ingest(
        write(
            tmp_path, "chat.jsonl.gz", gzip.compress(jsonl([{"prompt": "q", "completion": "a"}] * 3).encode())
        ),
        Kind.SFT,
    )
    assert result.format == Format.JSONL and len(result.rows) == 3


def test_declared_format_and_schema_win_over_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "export.dat", jsonl([{"prompt": "q", "completion": "a"}]))
    result = ingest(path, Kind.SFT, format=Format.JSONL, schema=Schema.TRL)
    assert (result.format, result.schema) == (Format.JSONL, Schema.TRL)
    wrong = ingest_file(
        path, Kind.SFT, IngestOptions(filename=path.name, format=Format.JSONL, schema=Schema.ALPACA)
    )
    assert wrong.errors[0].reason == "MISSING_FIELD" and wrong.errors[0].field == "instruction"


def test_skip_policy_keeps_valid_rows_and_counts_the_rest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mixed.jsonl",
        jsonl([{"prompt": "q", "completion": "a"}, {"prompt": "q"}, {"prompt": "q2", "completion": "a2"}])
        + "{broken\n",
    )
    result = ingest_file(path, Kind.SFT, IngestOptions(filename=path.name, policy=Policy.SKIP))
    assert len(result.rows) == 2 and [(e.line, e.reason) for e in result.errors] == [
        (2, "MISSING_FIELD"),
        (4, "INVALID_JSON"),
    ]
    assert not result.failed_under(Policy.SKIP) and result.failed_under(Policy.FAIL)


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_from_canonical_rows(tmp_path: Path, kind: Kind) -> None:
    conversation = [{"role": U, "content": "q"}]
    answer = [{"role": A, "content": "a"}]
    record = {
        Kind.TEXT: {"text": "t"},
        Kind.SFT: {"messages": conversation + answer},
        Kind.PREFERENCE: {
            "prompt": conversation,
            "chosen": answer,
            "rejected": [{"role": A, "content": "b"}],
        },
        Kind.UNPAIRED_PREFERENCE: {"prompt": conversation, "completion": answer, "label": True},
        Kind.PROMPT_ONLY: {"prompt": conversation, "reference": "a"},
        Kind.EVAL: {"prompt": conversation, "reference": "a"},
    }[kind]
    result = ingest(
        write(tmp_path, "rows.jsonl", jsonl([{"id": "x", **record}])), kind, schema=Schema.CANONICAL
    )
    assert result.rows == [{"id": "x", **record}]
