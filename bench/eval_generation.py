"""Batched generation against one-sample-at-a-time generation, with the evaluation runner's own
`generate` (left padding, chat template), on the same model and prompts, in one run.

    python bench/eval_generation.py [--prompts 64] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from services.data import presets
from services.data.presets import project_texts
from services.eval.runner import generate
from services.train.tiny import build_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    rows = presets.rows(presets.PRESETS["math-grading"])["math-grading-eval"][: args.prompts]
    prompts = [{"id": r["id"], "prompt": r["prompt"]} for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "model", project_texts(), hidden_size=256, layers=4)
        timings = {}
        for label, batch in (("one at a time", 1), (f"batches of {args.batch}", args.batch)):
            generation = {
                "max_new_tokens": args.max_new_tokens,
                "temperature": 0.0,
                "top_p": 1.0,
                "batch_size": batch,
                "seed": 0,
            }
            start = time.perf_counter()
            rate = generate(model, None, prompts, generation, root / f"out-{batch}.jsonl", lambda n: None)
            timings[label] = (time.perf_counter() - start, rate)
    base = timings["one at a time"][0]
    print(
        f"{len(prompts)} prompts, {args.max_new_tokens} new tokens each (greedy), 4-layer hidden-256 model, CPU"
    )
    for label, (seconds, rate) in timings.items():
        print(f"  {label:<16} {seconds:6.2f} s  {rate:8.0f} generated tokens/s  x{base / seconds:.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "eval_generation.json").write_text(
        json.dumps({k: {"seconds": v[0], "tokens_per_second": v[1]} for k, v in timings.items()}, indent=2)
    )


if __name__ == "__main__":
    main()
