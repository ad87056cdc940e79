"""The generation child process of an evaluation worker.

    python -m services.eval.runner WORK

WORK holds `spec.json` ({"models": [{"name", "dir", "base_dir"}], "generation": {...}}) and
`prompts.jsonl` ({"id", "prompt": [messages]}). For each model the runner writes
`predictions-{i}.jsonl` ({"id", "prediction"}) and progress lines to `progress.jsonl`.
Generation is batched with left padding through the tokenizer's chat template; LoRA adapters are
applied on their base with peft; CUDA when present, else CPU.

A prompt longer than the model's positions less `max_new_tokens` is cut in its middle (its first and
last tokens kept: the instructions and the question) and counted (`truncated` in `model_done`);
nothing runs past the position limit.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from services.kit.children import die_with_parent


def cut_middle(ids: list[int], budget: int) -> list[int]:
    """`ids` with their middle cut so that `budget` tokens remain (the start and the end kept)."""
    if len(ids) <= budget:
        return ids
    head = budget // 2
    return ids[:head] + ids[len(ids) - (budget - head) :]


def generate(
    model_dir: Path, base_dir: Path | None, prompts: list[dict], generation: dict, out: Path, progress
) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Answers to `prompts` written to `out`: (new tokens per second, prompts truncated)."""
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
    positions = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    budget = positions - generation["max_new_tokens"] if positions else 1 << 30
    if budget < 1:
        raise ValueError(
            f"max_new_tokens {generation['max_new_tokens']} leaves no room for a prompt in the model's "
            f"{positions} positions"
        )
    truncated = 0
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
            encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
            truncated += sum(1 for ids in encoded if len(ids) > budget)
            inputs = tokenizer.pad(
                {"input_ids": [cut_middle(ids, budget) for ids in encoded]}, return_tensors="pt", padding=True
            ).to(device)
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
    return new_tokens / max(time.perf_counter() - started, 1e-9), truncated


def ask_endpoint(judge: dict, texts: list[str]) -> list[str]:
    """The judge through an OpenAI-compatible chat completions API (the graders' client)."""
    import os

    from services.kit.graders import openai_judge

    ask = openai_judge(judge["endpoint"], os.environ.get("TUNEFORGE_EVAL_JUDGE_API_KEY", ""))
    sampling = {"max_tokens": judge["max_new_tokens"], "temperature": 0}
    return [ask(judge["endpoint_model"], [{"role": "user", "content": t}], sampling) for t in texts]


def run_judge(work: Path, spec: dict, prompts: list[dict], log) -> None:  # type: ignore[no-untyped-def]
    """Single-answer scores for every model, and pairwise verdicts against the baseline."""
    from services.kit.judging import pairwise_prompt, single_prompt

    judge = spec["judge"]
    answers = [
        {
            a["id"]: a["prediction"]
            for a in map(json.loads, (work / f"predictions-{i}.jsonl").read_text().splitlines())
        }
        for i in range(len(spec["models"]))
    ]
    jobs: list[tuple[str, str]] = []  # (key, judge prompt)
    for i in range(len(spec["models"])):
        for p in prompts:
            answer = answers[i][p["id"]]
            jobs.append(
                (
                    f"single|{i}|{p['id']}",
                    single_prompt(p["question"], p["reference"], answer, judge["rubric"]),
                )
            )
            if judge["pairwise"] and i > 0:
                base = answers[0][p["id"]]
                jobs.append(
                    (
                        f"second|{i}|{p['id']}",
                        pairwise_prompt(p["question"], p["reference"], base, answer, judge["rubric"]),
                    )
                )
                jobs.append(
                    (
                        f"first|{i}|{p['id']}",
                        pairwise_prompt(p["question"], p["reference"], answer, base, judge["rubric"]),
                    )
                )
    texts = [text for _, text in jobs]
    if judge["endpoint"]:
        outputs = ask_endpoint(judge, texts)
    else:
        raw = work / "judge-raw.jsonl"
        generation = {
            "max_new_tokens": judge["max_new_tokens"],
            "temperature": 0.0,
            "top_p": 1.0,
            "batch_size": spec["generation"]["batch_size"],
            "seed": 0,
        }
        generate(
            Path(judge["dir"]),
            Path(judge["base_dir"]) if judge["base_dir"] else None,
            [{"id": str(k), "prompt": [{"role": "user", "content": t}]} for k, t in enumerate(texts)],
            generation,
            raw,
            lambda n: None,
        )
        outputs = [json.loads(line)["prediction"] for line in raw.read_text().splitlines()]
    with (work / "judge.jsonl").open("w") as f:
        for (key, _), output in zip(jobs, outputs, strict=True):
            f.write(json.dumps({"key": key, "output": output}, ensure_ascii=False) + "\n")
    log.write(json.dumps({"type": "judged", "outputs": len(outputs)}) + "\n")


def main(work: Path) -> int:
    log = (work / "progress.jsonl").open("a", buffering=1)
    try:
        spec = json.loads((work / "spec.json").read_text())
        prompts = [json.loads(line) for line in (work / "prompts.jsonl").read_text().splitlines() if line]
        for i, model in enumerate(spec["models"]):
            rate, truncated = generate(
                Path(model["dir"]),
                Path(model["base_dir"]) if model["base_dir"] else None,
                prompts,
                spec["generation"],
                work / f"predictions-{i}.jsonl",
                lambda n: log.write(json.dumps({"type": "progress", "samples": n}) + "\n"),
            )
            log.write(
                json.dumps(
                    {"type": "model_done", "index": i, "tokens_per_second": rate, "truncated": truncated}
                )
                + "\n"
            )
        if spec.get("judge"):
            run_judge(work, spec, prompts, log)
        return 0
    except Exception as exc:
        traceback.print_exc()
        log.write(json.dumps({"type": "error", "message": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1


if __name__ == "__main__":
    die_with_parent()
    sys.exit(main(Path(sys.argv[1])))
