"""Files shaped as users really have them (LLaMA-Factory's `data/`, Qianfan's cookbook, the held-out
corpus of malformed files), written here in the same shapes: each ingests with the right kind and
count, or is refused with a message that names what the user wrote."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from services.data import cleaning, flags
from services.data.formats import Format, TextSplit
from services.data.ingest import IngestOptions, Policy, ingest_file
from services.data.schemas import Schema
from services.kit.rows import Kind, from_parquet_bytes, to_parquet_bytes

U, A = "user", "assistant"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def jsonl(records: list[object]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def ingest(path: Path, kind: Kind, **options: object):  # type: ignore[no-untyped-def]
    return ingest_file(path, kind, IngestOptions(filename=path.name, **options))  # type: ignore[arg-type]


def only_error(result):  # type: ignore[no-untyped-def]
    assert len(result.errors) == 1, [e.as_dict() for e in result.errors]
    return result.errors[0]


# LLaMA-Factory's data/glaive_toolcall_en_demo.json (glaive-style tool calling in ShareGPT).
GLAIVE = [
    {
        "conversations": [
            {"from": "human", "value": "I need to calculate my loan payment: $50000 at 5% for 10 years."},
            {
                "from": "function_call",
                "value": '{"name": "calculate_loan_payment", "arguments": {"principal": 50000, '
                '"interest_rate": 5, "loan_term": 10}}',
            },
            {"from": "observation", "value": '{"monthly_payment": 530.33}'},
            {"from": "gpt", "value": "Your monthly loan payment would be $530.33."},
        ],
        "system": "",
        "tools": '[{"name": "calculate_loan_payment", "description": "Calculate the monthly loan payment", '
        '"parameters": {"type": "object", "properties": {"principal": {"type": "number"}, '
        '"interest_rate": {"type": "number"}, "loan_term": {"type": "integer"}}, '
        '"required": ["principal", "interest_rate", "loan_term"]}}]',
    },
    {
        "conversations": [
            {"from": "human", "value": "Hi, can you tell me a joke?"},
            {"from": "gpt", "value": "Why did the scarecrow win an award? He was outstanding in his field."},
        ],
        "system": "",
        "tools": "[]",
    },
]


def test_glaive_tool_calling_sharegpt_ingests_as_tool_calling_sft(tmp_path: Path) -> None:
    result = ingest(write(tmp_path, "glaive_toolcall_en_demo.json", json.dumps(GLAIVE, indent=2)), Kind.SFT)
    assert not result.errors, [e.as_dict() for e in result.errors]
    assert (result.format, result.schema, len(result.rows)) == (Format.JSON, Schema.SHAREGPT, 2)
    messages = result.rows[0]["messages"]
    assert [m["role"] for m in messages] == [U, A, "tool", A]
    call = messages[1]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "calculate_loan_payment"
    assert json.loads(call["function"]["arguments"]) == {
        "principal": 50000,
        "interest_rate": 5,
        "loan_term": 10,
    }
    assert messages[2]["content"] == '{"monthly_payment": 530.33}'
    tools = json.loads(result.rows[0]["tools"])
    assert tools[0]["type"] == "function" and tools[0]["function"]["name"] == "calculate_loan_payment"
    assert "tools" not in result.rows[1]  # "[]": no tools
    # Stored and read back: the calls survive Parquet, and rows without them hold no null keys.
    back = from_parquet_bytes(to_parquet_bytes(result.rows, Kind.SFT))
    assert back == result.rows


def test_tool_calls_are_checked(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(GLAIVE[0]))
    bad["conversations"][1]["value"] = '{"name": "send_email", "arguments": {}}'
    error = only_error(ingest(write(tmp_path, "unknown.jsonl", jsonl([bad])), Kind.SFT))
    assert (error.reason, error.field) == ("UNKNOWN_TOOL", "conversations[1]")
    assert "send_email" in error.message and "calculate_loan_payment" in error.message
    cut = json.loads(json.dumps(GLAIVE[0]))
    cut["conversations"] = cut["conversations"][:3]  # ends with the tool's result
    error = only_error(ingest(write(tmp_path, "cut.jsonl", jsonl([cut])), Kind.SFT))
    assert error.reason == "ROLE_ORDER" and "tool result" in error.message
    garbled = json.loads(json.dumps(GLAIVE[0]))
    garbled["conversations"][1]["value"] = '{"name": "calculate_loan_payment", "arguments": {'
    error = only_error(ingest(write(tmp_path, "garbled.jsonl", jsonl([garbled])), Kind.SFT))
    assert (error.reason, error.field) == ("INVALID_TOOL_CALL", "conversations[1].value")
    # Tool calling belongs in sft data; an eval set cannot hold it.
    error = only_error(ingest(write(tmp_path, "eval.jsonl", jsonl([GLAIVE[0]])), Kind.EVAL))
    assert error.reason == "WRONG_KIND" and "tool-calling" in error.message


def test_openai_tool_calls_ingest_unchanged(tmp_path: Path) -> None:
    record = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
            {"role": "assistant", "content": "21 °C in Paris."},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
    }
    result = ingest(write(tmp_path, "openai_tools.jsonl", jsonl([record])), Kind.SFT)
    assert not result.errors
    row = result.rows[0]
    assert row["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert json.loads(row["tools"])[0]["function"]["name"] == "get_weather"


def test_qianfan_multi_turn_dpo_with_user_chosen_rejected(tmp_path: Path) -> None:
    records = [
        [
            {"user": "你好", "assistant": "你好！有什么可以帮你？"},
            {"user": "推荐一本书", "chosen": "推荐《活着》，余华的代表作。", "rejected": "不知道。"},
        ],
        [{"system": "你是助手", "user": "1+1=?", "chosen": "等于2。", "rejected": "等于3。"}],
    ]
    result = ingest(write(tmp_path, "qianfan_dpo.jsonl", jsonl(records)), Kind.PREFERENCE)
    assert not result.errors, [e.as_dict() for e in result.errors]
    assert result.schema == Schema.QIANFAN and len(result.rows) == 2
    first = result.rows[0]
    assert [m["role"] for m in first["prompt"]] == [U, A, U]
    assert first["chosen"][0]["content"].startswith("推荐") and first["rejected"][0]["content"] == "不知道。"
    assert result.rows[1]["prompt"][0] == {"role": "system", "content": "你是助手"}
    # A multi-turn SFT record in the same spelling.
    sft = [[{"user": "你好", "assistant": "你好！"}, {"user": "再见", "assistant": "再见！"}]]
    rows = ingest(write(tmp_path, "qianfan_sft.jsonl", jsonl(sft)), Kind.SFT).rows
    assert [m["role"] for m in rows[0]["messages"]] == [U, A, U, A]


def test_prompt_response_strings_and_errors_that_name_the_users_fields(tmp_path: Path) -> None:
    records = [{"prompt": "Capital of France?", "response": "Paris."}, {"prompt": "2+2?", "response": ""}]
    result = ingest(write(tmp_path, "pr.jsonl", jsonl(records)), Kind.SFT, policy=Policy.SKIP)
    assert result.rows[0]["messages"] == [
        {"role": U, "content": "Capital of France?"},
        {"role": A, "content": "Paris."},
    ]
    error = only_error(result)
    assert (error.field, error.reason) == ("response", "EMPTY_RESPONSE")
    assert "completion" not in error.message


def test_column_mapping_like_dataset_info(tmp_path: Path) -> None:
    records = [
        {"input_prompt": "把这句话翻译成英文：你好", "expected_output": "Hello"},
        {"input_prompt": "2+2=?", "expected_output": ""},
    ]
    path = write(tmp_path, "custom.jsonl", jsonl(records))
    columns = {"prompt": "input_prompt", "reference": "expected_output"}
    result = ingest(path, Kind.EVAL, columns=columns, policy=Policy.SKIP)
    assert result.rows[0]["prompt"] == [{"role": U, "content": "把这句话翻译成英文：你好"}]
    assert result.rows[0]["reference"] == "Hello"
    error = only_error(result)
    assert error.field == "expected_output" and "`expected_output`" in error.message
    assert "reference" not in error.field
    # CSV columns mapped to structured fields are parsed as JSON.
    csv_path = write(
        tmp_path,
        "chats.csv",
        'dialog\n"[{""role"": ""user"", ""content"": ""hi""}, {""role"": ""assistant"", ""content"": ""hello""}]"\n',
    )
    rows = ingest(csv_path, Kind.SFT, columns={"messages": "dialog"}).rows
    assert [m["role"] for m in rows[0]["messages"]] == [U, A]


def test_text_one_document_per_line(tmp_path: Path) -> None:
    lines = "".join(f"Document {i} about the history of writing systems.\n" for i in range(30))
    path = write(tmp_path, "wiki_demo.txt", lines)
    assert len(ingest(path, Kind.TEXT, text_split=TextSplit.LINE).rows) == 30
    assert len(ingest(path, Kind.TEXT).rows) == 1  # blank lines separate documents by default
    big = write(tmp_path, "big.txt", "A line of an encyclopaedia article, one of many.\n" * 3000)
    result = ingest(big, Kind.TEXT)
    warning = next(w for w in result.warnings if w["reason"] == "LONG_DOCUMENT")
    assert "text split `line`" in warning["message"] and warning["count"] == 1
    assert not ingest(big, Kind.TEXT, text_split=TextSplit.LINE).warnings


def test_kto_single_label_and_placeholders_are_flagged(tmp_path: Path) -> None:
    kto = [{"prompt": f"问题{i}", "completion": f"回答{i}", "label": True} for i in range(4)]
    result = ingest(write(tmp_path, "kto.jsonl", jsonl(kto)), Kind.UNPAIRED_PREFERENCE)
    assert [w["reason"] for w in result.warnings] == ["SINGLE_LABEL"]
    assert "desirable (true)" in result.warnings[0]["message"]
    roleplay = [
        {"prompt": "你好，{{char}}", "completion": "你好，我是{{char}}，{{user}}好！"},
        {"prompt": "今天天气如何？", "completion": "晴。"},
        {"prompt": "Hi ${user_name}", "completion": "Hello."},
    ]
    result = ingest(write(tmp_path, "roleplay.jsonl", jsonl(roleplay)), Kind.SFT)
    warning = result.warnings[0]
    assert warning["reason"] == "PLACEHOLDERS" and warning["count"] == 2
    assert warning["names"] == {"char": 1, "user": 1, "user_name": 1}
    filled, _ = cleaning.run_pipeline(
        result.rows,
        Kind.SFT,
        [cleaning.Operation("fill_placeholders", {"values": {"char": "孙悟空", "user": "师父"}})],
    )
    assert filled[0]["messages"][1]["content"] == "你好，我是孙悟空，师父好！"
    assert filled[2]["messages"][0]["content"] == "Hi ${user_name}"
    assert flags.placeholders("{{ 名字 }} and {not_one}") == ["名字"]


def test_near_dedup_on_the_response_keeps_role_play_rows_with_a_shared_profile() -> None:
    profile = "".join(
        f"设定第{i}条：你是孙悟空，花果山水帘洞美猴王，第{i * 7}回里大闹天宫，说话带着猴王的口气，自称俺老孙。"
        for i in range(12)
    )
    answers = [
        "俺老孙火眼金睛，一眼就看穿了妖怪。",
        "师父莫怕，有俺老孙在，谁也伤不了你。",
        "八戒这呆子又偷懒了，看俺老孙一棒打醒他。",
        "俺老孙一个筋斗云就是十万八千里。",
        "这蟠桃会没请俺老孙，俺自己去吃个够。",
        "如来佛祖的手掌心，俺老孙也翻得出去。",
    ]
    rows = [
        {
            "id": str(i),
            "messages": [
                {"role": "system", "content": profile},
                {"role": U, "content": f"第{i}问"},
                {"role": A, "content": a},
            ],
        }
        for i, a in enumerate(answers)
    ]
    whole, _ = cleaning.run_pipeline(rows, Kind.SFT, [cleaning.Operation("near_dedup")])
    by_response, reports = cleaning.run_pipeline(
        rows, Kind.SFT, [cleaning.Operation("near_dedup", {"field": "response"})]
    )
    assert len(whole) < len(rows)  # the shared profile dominates the whole row
    assert len(by_response) == len(rows) and reports[0].rows_removed == 0
    twice = [*rows, {**rows[0], "id": "copy"}]
    kept, _ = cleaning.run_pipeline(
        twice, Kind.SFT, [cleaning.Operation("near_dedup", {"field": "response"})]
    )
    assert [r["id"] for r in kept] == [r["id"] for r in rows]


def test_deeply_nested_json_is_a_located_invalid_json(tmp_path: Path) -> None:
    deep = '{"messages": ' + "[" * 5000 + "]" * 5000 + "}"
    ok = json.dumps({"messages": [{"role": U, "content": "hi"}, {"role": A, "content": "hello"}]})
    result = ingest(write(tmp_path, "deep.jsonl", ok + "\n" + deep + "\n"), Kind.SFT)
    error = only_error(result)
    assert (error.reason, error.line) == ("INVALID_JSON", 2)
    assert "5001 levels deep" in error.message
    start = time.monotonic()
    result = ingest(write(tmp_path, "deep.json", "[" + ok + ", " + deep + "]"), Kind.SFT)
    assert time.monotonic() - start < 5
    assert result.file_problem is not None and result.file_problem.reason == "INVALID_JSON"
    assert "record 2" in result.file_problem.message and "levels deep" in result.file_problem.message


def test_one_line_json_arrays_name_the_record(tmp_path: Path) -> None:
    records = [
        {"instruction": "a", "output": "b"},
        {"instruction": "c", "output": "d"},
        {"instruction": "e", "output": ""},
    ]
    result = ingest(write(tmp_path, "one_line.json", json.dumps(records)), Kind.SFT, policy=Policy.SKIP)
    assert [r["id"] for r in result.rows] == ["one_line.json#1", "one_line.json#2"]
    error = only_error(result)
    assert error.line == 1 and error.message.startswith("record 3: ")


def test_csv_quote_nul_and_switching_schema_messages(tmp_path: Path) -> None:
    csv_text = 'prompt,completion\nhi,hello\n"unclosed,answer\nmore,rows\n'
    error = only_error(ingest(write(tmp_path, "quote.csv", csv_text), Kind.SFT, policy=Policy.SKIP))
    assert (
        error.reason == "UNTERMINATED_QUOTE" and "line 3" in error.message and "never closed" in error.message
    )
    nul = ingest(
        write(tmp_path, "nul.csv", "prompt,completion\nhi,hel\x00lo\nok,fine\n"), Kind.SFT, policy=Policy.SKIP
    )
    error = only_error(nul)
    assert (error.reason, error.field, error.line) == ("NUL_BYTE", "completion", 2) and len(nul.rows) == 1
    utf16 = write(tmp_path, "utf16.csv", "prompt,completion\nhi,hello\n".encode("utf-16"))
    assert "UTF-16" in ingest(utf16, Kind.SFT).file_problem.message
    switching = [
        {"instruction": "a", "output": "b"},
        {"conversations": [{"from": "human", "value": "c"}, {"from": "gpt", "value": "d"}]},
    ]
    error = only_error(ingest(write(tmp_path, "mixed.jsonl", jsonl(switching)), Kind.SFT, policy=Policy.SKIP))
    assert error.reason == "SCHEMA_CHANGED" and "sharegpt" in error.message and "alpaca" in error.message


@pytest.mark.parametrize(
    ("line", "wanted"),
    [
        (
            '{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]}',
            "an assistant",
        ),
        ('{"messages": [{"role": "user", "content": "unterminated}]}', "starting at column"),
    ],
)
def test_messages_read_as_english(tmp_path: Path, line: str, wanted: str) -> None:
    error = only_error(ingest(write(tmp_path, "g.jsonl", line), Kind.SFT))
    assert wanted in error.message
    assert " a assistant" not in error.message and "at at" not in error.message


def test_eval_rows_with_several_references(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "multi.jsonl",
        jsonl(
            [
                {"prompt": "Capital of France?", "reference": ["Paris", "Paris, France", "Paris"]},
                {"prompt": "2+2?", "reference": "4", "references": ["four"]},
                {"prompt": "One?", "reference": ["only"]},
            ]
        ),
    )
    result = ingest(path, Kind.EVAL)
    assert not result.errors, [e.as_dict() for e in result.errors]
    first, second, third = result.rows
    assert first["reference"] == "Paris" and first["references"] == ["Paris", "Paris, France"]
    assert second["references"] == ["4", "four"]
    assert third == {**third, "reference": "only"} and "references" not in third
    stored = from_parquet_bytes(to_parquet_bytes(result.rows, Kind.EVAL))
    assert stored[0]["references"] == ["Paris", "Paris, France"] and "references" not in stored[2]


def test_a_mapped_column_the_file_lacks_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "eval.jsonl", jsonl([{"input_prompt": "1+1=?", "expected_output": "2"}]))
    result = ingest(path, Kind.EVAL, columns={"prompt": "question", "reference": "expected_output"})
    error = only_error(result)
    assert error.reason == "MISSING_COLUMN" and "`question` (mapped to `prompt`)" in error.message
    assert "`input_prompt`" in error.message
