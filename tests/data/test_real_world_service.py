"""Real-world-shaped files through the running platform: upload options, warnings, tool-calling SFT
trained for real, the CLI's exit codes, and a job that learns nothing diagnosed as such."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import tf  # noqa: F401 (a fixture)
from tests.data.test_real_world import GLAIVE, jsonl
from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.data.v1 import dataset_pb2

READY = dataset_pb2.DATASET_VERSION_STATE_READY


def test_tool_calling_sharegpt_trains_through_the_chat_templates_tools(
    client: Client, base_model: str, tmp_path: Path
) -> None:
    path = tmp_path / "glaive_toolcall_en_demo.json"
    path.write_text(json.dumps(GLAIVE * 4, ensure_ascii=False))
    client.data.create("toolcall", "sft")
    version = client.data.upload("toolcall", path)
    assert version.state == READY and version.row_count == 8, version.errors
    rows = list(client.data.rows(version.name))
    calls = [m for m in rows[0]["messages"] if m.get("tool_calls")]
    assert calls and calls[0]["tool_calls"][0]["function"]["name"] == "calculate_loan_payment", rows[0]
    assert json.loads(calls[0]["tool_calls"][0]["function"]["arguments"])["principal"] == 50000
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert json.loads(rows[0]["tools"])[0]["function"]["name"] == "calculate_loan_payment"
    job = client.train.create(
        base_model=base_model,
        training_data={"toolcall": 1.0},
        hyperparameters={"epochs": 1, "batch_size": 4, "learning_rate": 1e-3},
    )
    job = client.train.wait(job.name, timeout=600)
    assert job.final_model_version, job.error


def test_upload_options_and_warnings_reach_the_version(
    client: Client, base_model: str, tmp_path: Path
) -> None:
    mapped = tmp_path / "eval.jsonl"
    mapped.write_text(jsonl([{"input_prompt": "1+1=?", "expected_output": "2"}] * 3))
    client.data.create("mapped", "eval")
    version = client.data.upload(
        "mapped", mapped, columns={"prompt": "input_prompt", "reference": "expected_output"}
    )
    assert version.state == READY and version.row_count == 3
    wrong = client.data.upload("mapped", mapped, columns={"prompt": "question"})
    assert wrong.state != READY, wrong
    assert "question" in (
        wrong.errors.examples[0].message if wrong.errors.examples else wrong.failure.message
    )

    wiki = tmp_path / "wiki_demo.txt"
    wiki.write_text("".join(f"Document number {i} about a topic.\n" for i in range(30)))
    client.data.create("wiki", "text")
    assert client.data.upload("wiki", wiki, text_split="line").row_count == 30
    assert client.data.upload("wiki", wiki).row_count == 1

    kto = tmp_path / "kto.jsonl"
    kto.write_text(
        jsonl([{"prompt": f"hi {{{{name}}}} {i}", "completion": "hello", "label": True} for i in range(8)])
    )
    client.data.create("kto-one-label", "unpaired_preference")
    version = client.data.upload("kto-one-label", kto)
    reasons = {w.reason: w for w in version.warnings}
    assert {"SINGLE_LABEL", "PLACEHOLDERS"} <= set(reasons), version.warnings
    assert reasons["PLACEHOLDERS"].count == 8 and "name" in reasons["PLACEHOLDERS"].message
    error = expect_error(
        "INVALID_ARGUMENT",
        client.train.create,
        base_model=base_model,
        training_data={"kto-one-label": 1.0},
        method="kto",
    )
    assert error.violations[0].field == "training_job.training_data"
    assert "every one of the 8 rows is labelled desirable (true)" in error.violations[0].description


def test_cli_exits_1_for_a_failed_upload_in_json_too(tf, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "response": "r"}\n{"prompt": \n')
    tf("data", "create", "broken", "--kind", "sft")
    result = tf("--json", "data", "upload", "broken", str(bad), code=1)
    failed = json.loads(result.stdout)
    assert failed["state"] == "DATASET_VERSION_STATE_FAILED"
    (example,) = failed["errors"]["examples"]
    assert example["line"] == "2" and example["reason"] == "INVALID_JSON", example
    tf("data", "upload", "broken", str(bad), code=1)


def test_a_job_that_learns_nothing_is_diagnosed_not_learning(
    client: Client, base_model: str, math_data: None
) -> None:
    job = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 1.0},
        tuning="full",
        hyperparameters={"epochs": 1, "learning_rate": 1e-9, "batch_size": 8},
    )
    job = client.train.wait(job.name, timeout=600)
    assert job.final_model_version, job.error
    diagnosis = client.train.report(job.name).diagnosis
    assert diagnosis.verdict == "not_learning", diagnosis
    assert diagnosis.uniform_loss > 0 and diagnosis.end_loss > 0.9 * diagnosis.start_loss
    assert any("learning rate" in a for a in diagnosis.advice)
