"""The quickstart's steps end to end (the smaller CI settings), on the real local suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services.suite.suite import LocalSuite
from tuneforge import Client
from tuneforge.cli.quickstart import FAST, TUNED_ID, run


def test_quickstart_tunes_a_model_that_beats_its_base(suite: LocalSuite, tmp_path: Path) -> None:
    stages: list[str] = []
    with Client(suite.endpoints, api_key=suite.admin_key, project="quickstart-e2e") as client:
        result = run(
            client,
            settings=FAST,
            out_dir=tmp_path / "out",
            follow=False,
            stage=lambda name, detail, since: stages.append(name),
        )
        assert stages == [
            "data",
            "data insight",
            "base model",
            "post-pretrained",
            "fine-tuned",
            "training report",
            "evaluated",
            "published",
            "served",
        ]
        base, tuned = (result["metrics"][k] for k in result["metrics"])
        base_unscored, tuned_unscored = (result["unscored"][k] for k in result["unscored"])
        print("base", base, base_unscored, "tuned", tuned, tuned_unscored, "diagnosis", result["diagnosis"])
        # The tuned model gives a score in (nearly) every answer, and one close to the reference's.
        assert tuned_unscored.get("score_mae", 0) <= 6 and tuned["score_mae"] < 10
        if "score_mae" in base:  # the base wrote scores often enough to be compared
            assert tuned["score_mae"] < base["score_mae"] - 5, (
                "the tuned model grades closer to the reference"
            )
            assert tuned["score_accuracy"] >= base["score_accuracy"]
        else:  # the base writes no score at all: every answer unscored (never counted as 0)
            assert base_unscored["score_mae"] == 60
        assert tuned["rouge_l"] > base["rouge_l"]
        assert result["diagnosis"]["verdict"] and result["diagnosis"]["advice"]
        names = {Path(f).name for f in result["report_files"]}
        assert {"loss.png", "report.json", "metrics.png"} <= names
        assert all(Path(f).stat().st_size > 0 for f in result["report_files"])
        production = client.models.get_version(f"{TUNED_ID}@production")
        assert production.name == result["tuned_model"]
        assert production.lineage.base_model == result["base_model"], (
            "the adapter's base is the post-pretrained model"
        )
        writer = client.models.get_version(result["base_model"])
        assert writer.lineage.hyperparameters["method"] == "post_pretrain"
        assert (Path(result["production"]) / "adapter_model.safetensors").exists()
        serving = result["serving"]
        assert client.serve.get("essay-grader").serving_version == result["tuned_model"]
        assert len(serving["answers"]) == 3 and all(a["answer"] for a in serving["answers"])
        assert serving["stats"]["requests"] == 3 and not serving["stats"]["errors"]
        assert serving["stats"]["time_to_first_token_ms_p50"] > 0, "one answer was streamed"
        client.serve.delete("essay-grader")


def test_quickstart_command_offers_its_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tuneforge", "quickstart", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in ("--base-model", "--judge", "--fast", "--data-dir", "--keep-running"):
        assert option in out, option


def test_quickstart_with_a_given_base_model_skips_post_pretraining(
    suite: LocalSuite, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    stages: list[str] = []
    with Client(suite.endpoints, api_key=suite.admin_key, project="quickstart-own-base") as client:
        result = run(
            client,
            settings=replace(FAST, sft_epochs=1.0),
            out_dir=tmp_path / "out",
            base_model=str(tiny_model_dir),
            follow=False,
            stage=lambda name, detail, since: stages.append(name),
        )
        assert "post-pretrained" not in stages and stages[2] == "base model"
        imported = client.models.get_version(result["base_model"])
        assert imported.name.split("/")[3] == "quickstart-base"
        assert client.models.get_version(f"{TUNED_ID}@production").lineage.base_model == imported.name
