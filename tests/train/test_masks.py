"""Reasoning and weighted turns in SFT: `<think>` blocks stay in the text and, when asked, out of the
loss; assistant turns with OpenAI's `weight: 0` are context only. Checked on the tokens TRL's
trainer actually learns from (its labels), with the tiny model's template and with a template
without generation markers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from services.train.methods import masks
from services.train.methods.sft import Sft, SftParameters

THOUGHT = "<think>\n先算七乘六，等于四十二。\n</think>\n\n"
ROW = {
    "id": "r1",
    "messages": [
        {"role": "user", "content": "七乘六是多少？"},
        {"role": "assistant", "content": "五十。", "weight": 0},
        {"role": "user", "content": "不对，再算。"},
        {"role": "assistant", "content": THOUGHT + "答案是四十二。"},
    ],
}


def trained_text(tokenizer, encoded: dict) -> str:
    return tokenizer.decode(
        [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
    )


def test_reasoning_kept_and_masked_on_request(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    kept = masks.masked_row(tokenizer, ROW, mask_reasoning=False, markers=True)
    masked = masks.masked_row(tokenizer, ROW, mask_reasoning=True, markers=True)
    assert kept["input_ids"] == masked["input_ids"], "the reasoning stays in the text either way"
    assert "四十二" in tokenizer.decode(masked["input_ids"]) and "先算" in tokenizer.decode(
        masked["input_ids"]
    )
    trained_kept, trained_masked = trained_text(tokenizer, kept), trained_text(tokenizer, masked)
    assert "先算" in trained_kept.replace(" ", "") and "先算" not in trained_masked.replace(" ", "")
    assert "答案是四十二" in trained_masked.replace(" ", "")
    # the first answer has weight 0: never trained
    assert "五十" not in trained_kept.replace(" ", "")
    assert sum(masked["assistant_masks"]) < sum(kept["assistant_masks"])


def test_without_generation_markers_the_last_answer_is_trained(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = tokenizer.chat_template.replace("{% generation %}", "").replace(
        "{% endgeneration %}", ""
    )
    encoded = masks.masked_row(tokenizer, ROW, mask_reasoning=True, markers=False)
    trained = trained_text(tokenizer, encoded).replace(" ", "")
    assert "答案是四十二" in trained and "先算" not in trained and "五十" not in trained
    last_zero = {**ROW, "messages": [*ROW["messages"][:-1], {**ROW["messages"][-1], "weight": 0}]}
    assert masks.masked_row(tokenizer, last_zero, mask_reasoning=False, markers=False) == {}


def test_a_template_that_marks_fewer_turns_is_a_clear_error(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    # Marks only the last assistant turn (as some templates do): weights per turn cannot be placed.
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ '<|assistant|>' }}"
        "{% if loop.last %}{% generation %}{{ m['content'] + eos_token }}{% endgeneration %}"
        "{% else %}{{ m['content'] + eos_token }}{% endif %}"
        "{% else %}{{ '<|' + m['role'] + '|>' + m['content'] + '\\n' }}{% endif %}{% endfor %}"
    )
    with pytest.raises(masks.MaskError, match="marks 1 assistant spans for 2 assistant turns"):
        masks.masked_row(tokenizer, ROW, mask_reasoning=False, markers=True)


def test_plain_rows_keep_the_trainers_own_path(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    plain = {
        "id": "p",
        "messages": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "好"}],
    }
    weighted_one = {**plain, "messages": [plain["messages"][0], {**plain["messages"][1], "weight": 1}]}
    rows = Sft().trainer_rows(tokenizer, [plain, weighted_one], SftParameters())
    assert rows == [plain, plain], "weight 1 is the default and is dropped before the template"


SCRIPT = r"""
import json, sys
from pathlib import Path
from transformers import AutoModelForCausalLM, AutoTokenizer
from services.train.methods.base import TrainerSetup
from services.train.methods.sft import Sft, SftParameters
model_dir, rows_file, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
tokenizer = AutoTokenizer.from_pretrained(model_dir)
method, config = Sft(), SftParameters(mask_reasoning=sys.argv[4] == "1")
train = [{k: v for k, v in r.items() if k != "id"} for r in method.trainer_rows(tokenizer, rows, config)]
common = dict(output_dir=str(out), per_device_train_batch_size=2, report_to=[], disable_tqdm=True,
    bf16=False, dataloader_pin_memory=False)
setup = TrainerSetup(common=common, model=AutoModelForCausalLM.from_pretrained(model_dir), ref_model=None,
    peft_config=None, tokenizer=tokenizer, train=train, validation=None, callbacks=[], max_length=512,
    job_dir=out, config=config, packing=sys.argv[5] == "1")
trainer = method.build_trainer(setup)
labels = [l for row in trainer.train_dataset["labels"] for l in row if l != -100]
print(json.dumps({"trained": tokenizer.decode(labels).replace(" ", ""), "rows": len(trainer.train_dataset)}))
"""


@pytest.mark.parametrize("packing", [False, True])
def test_trl_learns_from_the_masked_tokens_only(tiny_model_dir: Path, tmp_path: Path, packing: bool) -> None:
    rows = tmp_path / "rows.jsonl"
    other = {
        "id": "r2",
        "messages": [{"role": "user", "content": "一加一？"}, {"role": "assistant", "content": "二。"}],
    }
    rows.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (ROW, other)))
    out = {}
    for mask in ("0", "1"):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                SCRIPT,
                str(tiny_model_dir),
                str(rows),
                str(tmp_path / mask),
                mask,
                "1" if packing else "0",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert done.returncode == 0, done.stderr[-3000:]
        out[mask] = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["1"]["rows"] == (1 if packing else 2)
    assert "先算" in out["0"]["trained"] and "先算" not in out["1"]["trained"]
    for trained in (out["0"]["trained"], out["1"]["trained"]):
        assert "答案是四十二" in trained and "二。" in trained and "五十" not in trained
