"""The generation child process of an evaluation worker.

    python -m services.eval.runner WORK

WORK holds `spec.json` ({"models": [{"name", "dir", "base_dir"}], "generation": {...}}) and
`prompts.jsonl` ({"id", "prompt": [messages]}). For each model the runner writes
`predictions-{i}.jsonl` ({"id", "prediction"}) and progress lines to `progress.jsonl`.
Generation is batched with left padding through the tokenizer's chat template; LoRA adapters are
applied on their base with peft; CUDA when present, else CPU.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def generate(
    model_dir: Path, base_dir: Path | None, prompts: list[dict], generation: dict, out: Path, progress
) -> float:  # type: ignore[no-untyped-def]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(
        model_dir if (model_dir / "tokenizer.json").exists() else base_dir
    )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if base_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype), model_dir
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.to(device).eval()
    torch.manual_seed(generation["seed"])
    sampling = generation["temperature"] > 0
    new_tokens = 0
    started = time.perf_counter()
    with out.open("w") as f:
        for start in range(0, len(prompts), generation["batch_size"]):
            batch = prompts[start : start + generation["batch_size"]]
            texts = [
                tokenizer.apply_chat_template(p["prompt"], add_generation_prompt=True, tokenize=False)
                for p in batch
            ]
            inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                output = model.generate(
                    **inputs,
                    max_new_tokens=generation["max_new_tokens"],
                    do_sample=sampling,
                    temperature=generation["temperature"] if sampling else None,
                    top_p=generation["top_p"] if sampling else None,
                    pad_token_id=tokenizer.pad_token_id,
                )
            answers = output[:, inputs["input_ids"].shape[1] :]
            for item, ids in zip(batch, answers, strict=True):
                new_tokens += int((ids != tokenizer.pad_token_id).sum())
                f.write(
                    json.dumps(
                        {
                            "id": item["id"],
                            "prediction": tokenizer.decode(ids, skip_special_tokens=True).strip(),
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
            progress(len(batch))
    return new_tokens / max(time.perf_counter() - started, 1e-9)


def main(work: Path) -> int:
    log = (work / "progress.jsonl").open("a", buffering=1)
    try:
        spec = json.loads((work / "spec.json").read_text())
        prompts = [json.loads(line) for line in (work / "prompts.jsonl").read_text().splitlines() if line]
        for i, model in enumerate(spec["models"]):
            rate = generate(
                Path(model["dir"]),
                Path(model["base_dir"]) if model["base_dir"] else None,
                prompts,
                spec["generation"],
                work / f"predictions-{i}.jsonl",
                lambda n: log.write(json.dumps({"type": "progress", "samples": n}) + "\n"),
            )
            log.write(json.dumps({"type": "model_done", "index": i, "tokens_per_second": rate}) + "\n")
        return 0
    except Exception as exc:
        traceback.print_exc()
        log.write(json.dumps({"type": "error", "message": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
