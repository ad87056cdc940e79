"""A transcript of the CLI as a user meets it: commands, `--json`, and one-line errors for mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from services.suite.suite import LocalSuite
from tests.conftest import write_model_folder


@pytest.fixture
def tf(suite: LocalSuite, project: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "TUNEFORGE_HOME": str(suite.data_dir),
        "TUNEFORGE_API_KEY": suite.admin_key,
        "TUNEFORGE_PROJECT": project,
        "COLUMNS": "200",
    }

    def run(
        *args: str, code: int = 0, extra_env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "tuneforge", *args],
            env={**env, **(extra_env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == code, (
            f"tuneforge {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        return result

    return run


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    return lines[0]


def test_cli_transcript(tf, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = write_model_folder(tmp_path / "model")
    assert (
        "created projects/"
        in tf("models", "create", "essay", "--display-name", "Essay grader", "--tag", "task=essay").stdout
    )
    listed = json.loads(tf("--json", "models", "list").stdout)
    assert [m["display_name"] for m in listed] == ["Essay grader"] and listed[0]["tags"] == {"task": "essay"}
    assert "essay" in tf("models", "list").stdout

    uploaded = json.loads(
        tf(
            "--json", "models", "upload", "essay", str(folder), "--base-model", "hf://Qwen/Qwen2.5-0.5B"
        ).stdout
    )
    assert (
        uploaded["name"].endswith("/versions/1")
        and uploaded["lineage"]["base_model"] == "hf://Qwen/Qwen2.5-0.5B"
    )
    assert (
        "versions/2"
        in tf("models", "upload", "essay", str(folder), "--parent", "essay/1", "--presigned").stdout
    )
    assert (
        "essay@production -> essay/2" in tf("models", "alias", "set", "essay", "production", "essay/2").stdout
    )
    shown = tf("models", "show", "essay@production").stdout
    assert "model.safetensors" in shown and "production" in shown
    versions = json.loads(tf("--json", "models", "versions", "essay").stdout)
    assert "aliases" not in versions[0] and versions[1]["aliases"] == ["production"]
    assert "2 files verified" in tf("models", "download", "essay@production", str(tmp_path / "out")).stdout
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == (
        folder / "model.safetensors"
    ).read_bytes()
    assert json.loads(tf("--json", "models", "alias", "list", "essay").stdout)[0]["version"].endswith(
        "/versions/2"
    )

    # Mistakes: each one line, non-zero exit, no traceback.
    line = one_line_error(tf("models", "create", "Bad_Name", code=1))
    assert "INVALID_ARGUMENT" in line and "model_id" in line
    assert "NOT_FOUND" in one_line_error(tf("models", "show", "nope", code=1))
    assert "ALIAS_NOT_FOUND" not in one_line_error(tf("models", "show", "essay@staging", code=1))
    line = one_line_error(tf("models", "delete", "essay/2", code=1))
    assert "FAILED_PRECONDITION" in line and "production" in line
    unsafe = write_model_folder(tmp_path / "unsafe", extra={"pytorch_model.bin": b"\x80\x04"})
    assert "safetensors" in one_line_error(tf("models", "upload", "essay", str(unsafe), code=1))
    assert "UNAUTHENTICATED" in one_line_error(
        tf("models", "list", code=1, extra_env={"TUNEFORGE_API_KEY": "tf_x_y"})
    )
    line = one_line_error(tf("models", "list", code=1, extra_env={"TUNEFORGE_ENDPOINT": "127.0.0.1:1"}))
    assert "cannot reach TuneForge" in line
    assert "KEY=VALUE" in tf("models", "create", "x", "--tag", "novalue", code=2).stderr
    tf("models", "frobnicate", code=2)

    tf("models", "alias", "rm", "essay", "production")
    assert "deleted essay" in tf("models", "delete", "essay", "--force").stdout


def test_keys_and_status_commands(tf, suite: LocalSuite) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(
        tf(
            "--json",
            "keys",
            "create",
            "--project",
            "cli-proj",
            "--name",
            "ci",
            "--data-dir",
            str(suite.data_dir),
        ).stdout
    )
    assert created["api_key"].startswith("tf_") and created["project"] == "cli-proj"
    listed = json.loads(tf("--json", "keys", "list", "--data-dir", str(suite.data_dir)).stdout)
    assert created["key_id"] in {k["key_id"] for k in listed}
    assert "revoked" in tf("keys", "revoke", created["key_id"], "--data-dir", str(suite.data_dir)).stdout
    one_line_error(tf("keys", "revoke", "nope", "--data-dir", str(suite.data_dir), code=1))

    status = json.loads(tf("--json", "status", "--data-dir", str(suite.data_dir)).stdout)
    workers = [s for s in status if s["component"].startswith("worker:")]
    assert workers and all(w["accelerators"] >= 1 and "process" in w["backends"] for w in workers), workers
    assert {s["component"]: s["status"] for s in status if s not in workers} == {
        "nats": "serving",
        "s3": "serving",
        "registry": "serving",
        "data": "serving",
        "train": "serving",
        "eval": "serving",
        "serve": "serving",
        "iam": "serving",
        "openai": "serving",
        "console": "serving",
    }
    assert "no running suite" in tf("status", "--data-dir", "/nonexistent", code=2).stderr


def test_up_prints_endpoints_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    import signal
    import socket

    data_dir = tmp_path / "home"
    process = subprocess.Popen(
        [sys.executable, "-m", "tuneforge", "--json", "up", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        text = ""
        while True:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, f"tuneforge up exited early:\n{process.stderr.read()}"  # type: ignore[union-attr]
            text += line
            if line.startswith("}"):
                break
        started = json.loads(text)
        assert started["admin_api_key"].startswith("tf_")
        assert set(started["endpoints"]) == {
            "nats",
            "s3",
            "registry",
            "data",
            "train",
            "eval",
            "serve",
            "iam",
            "openai",
            "console",
        }
        status = subprocess.run(
            [sys.executable, "-m", "tuneforge", "status", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0 and status.stdout.count("serving") == 10
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    for address in started["endpoints"].values():
        netloc = urllib.parse.urlsplit(address if "://" in address else f"tcp://{address}").netloc
        host, port = netloc.rsplit(":", 1)
        with socket.socket() as s:
            assert s.connect_ex((host, int(port))) != 0, f"{address} still listening after Ctrl-C"
    status = subprocess.run(
        [sys.executable, "-m", "tuneforge", "status", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 2 and "no running suite" in status.stderr


def test_data_cli_transcript(tf, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "chat.jsonl"
    good.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"q{i % 8}"},
                        {"role": "assistant", "content": f"a{i % 8}"},
                    ]
                }
            )
            + "\n"
            for i in range(20)
        )
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"messages": [{"role": "user", "content": "no answer"}]}\n')
    assert "created projects/" in tf("data", "create", "chats", "--kind", "sft").stdout
    shown = tf("data", "upload", "chats", str(good)).stdout
    assert "chats/1" in shown and "ready" in shown
    failed = tf("data", "upload", "chats", str(bad), code=1)
    assert (
        "MISSING_ASSISTANT_TURN" in failed.stdout and "bad.jsonl" in failed.stdout and "21" in failed.stdout
    )
    assert "FAILED validation" in failed.stderr
    skipped = json.loads(tf("--json", "data", "upload", "chats", str(bad), "--on-error", "skip").stdout)
    assert skipped["row_count"] == "20" and skipped["skipped_row_count"] == "1"
    rows = tf("data", "rows", "chats/1", "--limit", "3").stdout.splitlines()
    assert len(rows) == 3 and json.loads(rows[0])["id"] == "chat.jsonl:1"
    assert "exact / near duplicates" in tf("data", "insight", "chats/1").stdout
    cleaned = json.loads(
        tf(
            "--json",
            "data",
            "clean",
            "chats/1",
            "--op",
            "exact_dedup",
            "--op",
            '{"near_dedup": {"threshold": 0.9}}',
        ).stdout
    )
    assert cleaned["row_count"] == "8"
    assert (
        "train chats/5 (6 rows), validation chats/6 (2 rows)"
        in tf("data", "split", "chats/4", "--validation-ratio", "0.25").stdout
    )
    plan = tf("data", "mix", "--source", "chats/5=2", "--source", "chats/6=0.5").stdout
    assert "12" in plan and "%" in plan
    assert (
        "(13 rows)"
        in tf("data", "mix", "--source", "chats/5=2", "--source", "chats/6=0.5", "--into", "chats").stdout
    )
    table = tf("data", "versions", "chats").stdout
    assert "FAILED" in table and "mixture" in table
    assert "作文批改" in tf("data", "presets", "list").stdout
    assert "essay-grading-train/1: 300 rows" in tf("data", "presets", "install", "essay-grading").stdout

    assert "kind" in one_line_error(tf("data", "create", "x", "--kind", "chat", code=1))
    assert "NOT_FOUND" in one_line_error(tf("data", "rows", "nope/1", code=1))
    assert "failed validation and holds no data" in one_line_error(tf("data", "rows", "chats/2", code=1))
    assert "VERSION=RATE" in tf("data", "mix", "--source", "chats/5", code=2).stderr


def test_train_cli_transcript(
    tf, suite: LocalSuite, project: str, tiny_model_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from tuneforge import Client

    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as client:
        client.models.create("tiny")
        client.models.upload("tiny", tiny_model_dir)
        client.data.install_preset("math-grading")
    line = one_line_error(
        tf(
            "train",
            "create",
            "--base-model",
            "tiny/1",
            "--data",
            "math-grading-train=0.1",
            "--hp",
            "learning_rate=-1",
            code=1,
        )
    )
    assert "training_job.hyperparameters.learning_rate" in line
    created = json.loads(
        tf(
            "--json",
            "train",
            "create",
            "--base-model",
            "tiny/1",
            "--data",
            "math-grading-train=0.1",
            "--job-id",
            "cli-job",
            "--hp",
            "epochs=1",
            "--hp",
            "batch_size=8",
            "--hp",
            "learning_rate=0.002",
        ).stdout
    )
    assert created["state"] == "TRAINING_JOB_STATE_QUEUED"
    updates = [json.loads(x) for x in tf("--json", "train", "watch", "cli-job").stdout.splitlines()]
    assert any("metric_point" in u for u in updates)
    assert updates[-1]["training_job"]["state"] == "TRAINING_JOB_STATE_SUCCEEDED", (
        "the stream ends with the final state"
    )
    shown = tf("train", "show", "cli-job").stdout
    assert "succeeded" in shown and "final model" in shown
    assert "cli-job" in tf("train", "list").stdout
    assert "FAILED_PRECONDITION" in one_line_error(tf("train", "cancel", "cli-job", code=1))
    assert "NOT_FOUND" in one_line_error(tf("train", "show", "nope", code=1))
    report = tf("train", "report", "cli-job").stdout
    assert report.split()[0] in ("converged", "still_improving", "too_short", "unstable"), report
    assert "→" in report and "loss.png" in report
    files = tf("train", "report", "cli-job", "--out", str(tmp_path / "train-report")).stdout.split()
    assert [Path(f).name for f in files] == ["report.json", "loss.png"]
    diagnosis = json.loads(tf("--json", "train", "report", "cli-job").stdout)["diagnosis"]
    assert diagnosis["verdict"] == report.split()[0]
    kept = json.loads(tf("--json", "train", "checkpoints", "cli-job").stdout)
    registered = json.loads(
        tf("--json", "train", "register-checkpoint", f"cli-job/checkpoints/{kept[0]['step']}").stdout
    )
    assert registered["model_version"].startswith(f"projects/{project}/models/cli-job/versions/")
    assert "JOB/checkpoints/STEP" in one_line_error(tf("train", "register-checkpoint", "cli-job", code=2))
    grpo = [
        "train",
        "create",
        "--base-model",
        "tiny/1",
        "--data",
        "math-grading-train=0.1",
        "--method",
        "grpo",
    ]
    assert "training_job.method_parameters.rewards" in one_line_error(tf(*grpo, code=1))
    assert "word_count takes a number" in one_line_error(tf(*grpo, "--reward", "word_count:many", code=2))
    assert "training_job.priority" in one_line_error(
        tf(
            "train",
            "create",
            "--base-model",
            "tiny/1",
            "--data",
            "math-grading-train=0.1",
            "--priority",
            "urgent",
            code=1,
        )
    )
    shown = tf(
        "eval",
        "create",
        "--model",
        "tiny/1",
        "--dataset",
        "math-grading-eval",
        "--metric",
        "rouge_l",
        "--max-new-tokens",
        "4",
        "--judge",
        "tiny/1",
        "--rubric",
        "a correct score",
        "--watch",
    ).stdout
    assert "succeeded" in shown and "rouge_l" in shown
    assert "judge on tiny/1:" in shown and "unparseable verdicts" in shown, shown
    (evaluation,) = json.loads(tf("--json", "eval", "list").stdout)
    assert evaluation["name"].rsplit("/", 1)[-1] in tf("eval", "list").stdout
    paths = tf("eval", "report", evaluation["name"], "--out", str(tmp_path / "report")).stdout.split()
    assert [Path(p).name for p in paths] == ["report.json", "metrics.png", "distributions.png"]
    assert json.loads(Path(paths[0]).read_text())["results"][0]["judge_scored"] >= 0
    assert "rating_task.model_versions" in one_line_error(
        tf("eval", "rating-task", evaluation["name"], "--kind", "side_by_side", code=1)
    ), "side by side needs two model versions"
    task = json.loads(tf("--json", "eval", "rating-task", evaluation["name"], "--scale", "3").stdout)
    items = json.loads(tf("--json", "eval", "rating-items", task["name"], "--limit", "2").stdout)
    assert len(items) == 2 and all(len(i["answers"]) == 1 for i in items)
    for item in items:
        for rater in ("ana", "bo"):
            tf("eval", "rate", task["name"], item["sample_id"], rater, "--score", "2")
    summary = tf("eval", "rating-summary", task["name"]).stdout
    assert "100%" in summary and "2" in summary, summary
    assert "score" in one_line_error(
        tf("eval", "rate", task["name"], items[0]["sample_id"], "ana", "--score", "7", code=1)
    )
    assert "unknown metric" in one_line_error(
        tf(
            "eval",
            "create",
            "--model",
            "tiny/1",
            "--dataset",
            "math-grading-eval",
            "--metric",
            "nope",
            code=1,
        )
    )


def test_catalogue_cli_transcript(tf, tiny_model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shown = tf("models", "import", str(tiny_model_dir), "tiny-cli").stdout
    assert "llama" in shown and "family / parameters" in shown
    assert "tiny-cli/1" in tf("models", "catalog", "--filter", 'family = "llama"').stdout
    tf("models", "upload", "tiny-cli", str(tiny_model_dir), "--parent", "tiny-cli/1")
    tree = tf("models", "lineage", "tiny-cli/2").stdout
    assert "tiny-cli/1" in tree and "tiny-cli/2 ◀" in tree and "parent" in tree
    assert "files verified" in tf("models", "export", "tiny-cli/1", str(tmp_path / "export")).stdout
    assert (tmp_path / "export" / "model.safetensors").exists()
    assert "quantize:int8" in tf("models", "derive", "tiny-cli/1", "quantize", "int8").stdout
    tf("models", "alias", "set", "tiny-cli", "production", "tiny-cli/2")
    assert "(removed)" not in tf("models", "alias", "history", "tiny-cli").stdout
    assert "is not a LoRA adapter" in one_line_error(
        tf("models", "derive", "tiny-cli/1", "merge_lora", code=1)
    )


def test_shell_completion_completes_commands() -> None:

    tuneforge = Path(sys.executable).with_name("tuneforge")
    env = {
        **os.environ,
        "_TUNEFORGE_COMPLETE": "complete_bash",
        "COMP_WORDS": "tuneforge train re",
        "COMP_CWORD": "2",
    }
    out = subprocess.run([str(tuneforge)], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["report", "register-checkpoint"], out
