"""The seed's essay case with Qianfan-sized essays (2.5–4.2k-token prompts): ingested from Qianfan's
file shape, trained and evaluated on a base with the quickstart's context; refused with the numbers
on a short-context base, where prompt truncation is the documented way through."""

from __future__ import annotations

import json
from pathlib import Path

from services.data.presets import qianfan_essays
from services.train.tiny import build_tiny_model
from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.api.evaluations import STATE_NAMES
from tuneforge.cli.quickstart import BASE_CONTEXT
from tuneforge.data.v1 import dataset_pb2


def test_qianfan_sized_essays_train_and_evaluate_on_the_quickstart_context(
    client: Client, base_model: str, tmp_path: Path
) -> None:
    from services.data.presets import project_texts

    records = [r for chars in (2300, 3100, 3800) for r in qianfan_essays(2, chars, seed=chars)]
    path = tmp_path / "essays.jsonl"
    path.write_text("".join(json.dumps([r], ensure_ascii=False) + "\n" for r in records))
    client.data.create("gaokao", "sft")
    version = client.data.upload("gaokao", path)
    assert version.state == dataset_pb2.DATASET_VERSION_STATE_READY and version.row_count == 6, version.errors

    folder = build_tiny_model(tmp_path / "long", project_texts(), max_positions=BASE_CONTEXT)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompts = [len(tokenizer(r["prompt"])["input_ids"]) for r in records]
    assert min(prompts) >= 2400 and max(prompts) <= 4300, prompts  # Qianfan's essay lengths
    client.models.create("long-base")
    long_base = client.models.upload("long-base", folder).name

    # The 512-position base cannot hold one essay: refused at creation with the numbers.
    error = expect_error(
        "INVALID_ARGUMENT", client.train.create, base_model=base_model, training_data={"gaokao": 1.0}
    )
    assert error.violations[0].field == "training_job.hyperparameters.max_sequence_length"
    assert "the context is 512" in error.violations[0].description, error.violations
    # ... and cutting the essay's middle is the documented way to train it there anyway.
    cut = client.train.create(
        base_model=base_model,
        training_data={"gaokao": 1.0},
        hyperparameters={"truncate_overlength": True, "prompt_truncation": "middle", "batch_size": 2},
    )
    client.train.cancel(cut.name)

    job = client.train.create(
        base_model=long_base,
        training_data={"gaokao": 1.0},
        hyperparameters={"epochs": 1, "batch_size": 2, "learning_rate": 1e-3},
    )
    job = client.train.wait(job.name, timeout=600)
    assert job.final_model_version, job.error

    client.data.create("gaokao-eval", "eval")
    eval_path = tmp_path / "eval.jsonl"
    held_out = qianfan_essays(2, 3500, seed=7)
    eval_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in held_out))
    assert client.data.upload("gaokao-eval", eval_path).row_count == 2
    evaluation = client.evals.create(
        [long_base, job.final_model_version],
        "gaokao-eval",
        metrics=["score_mae", "rouge_l"],
        max_new_tokens=8,
    )
    done = client.evals.wait(evaluation.name, timeout=600)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    assert all(r.truncated_prompts == 0 for r in done.results), "the essays fit the context whole"
    assert all(r.samples == 2 for r in done.results)
