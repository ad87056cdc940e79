"""Packing without cross-contamination: TRL's best-fit-decreasing packing with padding-free position
ids, as the platform's SFT trainer runs it, gives the loss the same rows give one by one (each packed
row attends to itself only, on the CPU's SDPA attention as well as with FlashAttention)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, sys
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from services.train.methods.base import TrainerSetup
from services.train.methods.sft import Sft
model_dir, rows_file, out, packing = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "1"
rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
tokenizer = AutoTokenizer.from_pretrained(model_dir)
method = Sft()
common = dict(output_dir=str(out), per_device_train_batch_size=len(rows), per_device_eval_batch_size=len(rows),
    report_to=[], disable_tqdm=True, seed=0, data_seed=0, bf16=False, dataloader_pin_memory=False)
setup = TrainerSetup(common=common, model=AutoModelForCausalLM.from_pretrained(model_dir), ref_model=None,
    peft_config=None, tokenizer=tokenizer, train=method.trainer_rows(tokenizer, rows),
    validation=method.trainer_rows(tokenizer, rows), callbacks=[], max_length=4096, job_dir=out, config=None,
    packing=packing)
trainer = method.build_trainer(setup)
batch = next(iter(trainer.get_eval_dataloader()))
print(json.dumps({"loss": trainer.evaluate()["eval_loss"], "sequences": int(batch["input_ids"].shape[0]),
    "has_position_ids": "position_ids" in batch}))
"""


def run(model_dir: Path, rows: Path, out: Path, packing: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model_dir), str(rows), str(out), "1" if packing else "0"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_packed_loss_equals_unpacked_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"r{i}",
                    "messages": [
                        {"role": "user", "content": f"第{i}题：" + "天气很好。" * (i + 1)},
                        {"role": "assistant", "content": "回答" * (2 * i + 3)},
                    ],
                },
                ensure_ascii=False,
            )
            + "\n"
            for i in range(6)
        )
    )
    unpacked = run(tiny_model_dir, rows, tmp_path / "unpacked", packing=False)
    packed = run(tiny_model_dir, rows, tmp_path / "packed", packing=True)
    print("unpacked", unpacked, "packed", packed)
    assert unpacked["sequences"] == 6 and packed["sequences"] == 1, "all six rows share one packed sequence"
    assert packed["has_position_ids"], "padding-free: each row's positions restart at 0"
    assert abs(packed["loss"] - unpacked["loss"]) < 1e-4, (packed, unpacked)
