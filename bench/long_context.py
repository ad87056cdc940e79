"""What a context long enough for Qianfan's essays (2.5–4.2k-token prompts) costs the quickstart's
built base: the same Llama (the quickstart's settings) built with 1,024 and with 8,192 positions,
its parameters and bytes on disk, and one full-tuning training step (forward, backward, AdamW) on
essay-shaped rows of 512 to 4,096 tokens (plain transformers and torch, one process).

    python bench/long_context.py [--hidden 256] [--layers 4] [--vocab 3000] [--steps 3]

Llama's positions are rotary (no learned position table), so the longer context costs nothing until
a row is long; the step times show what a long row costs when there is one.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from services.data.presets import project_texts, qianfan_essays
    from services.train.tiny import build_tiny_model

    torch.manual_seed(0)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for positions in (1024, 8192):
            folders[positions] = build_tiny_model(
                Path(tmp) / str(positions),
                project_texts(),
                vocab_size=args.vocab,
                hidden_size=args.hidden,
                layers=args.layers,
                max_positions=positions,
            )
            model = AutoModelForCausalLM.from_pretrained(folders[positions])
            results[f"{positions} positions"] = {
                "parameters": sum(p.numel() for p in model.parameters()),
                "bytes": sum(f.stat().st_size for f in folders[positions].iterdir()),
            }
        tokenizer = AutoTokenizer.from_pretrained(folders[8192])
        essay = qianfan_essays(1, 20_000)[0]["prompt"]
        ids = tokenizer(essay)["input_ids"]
        model = AutoModelForCausalLM.from_pretrained(folders[8192])
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        steps: dict[int, float] = {}
        for length in (512, 1024, 2048, 4096):
            batch = torch.tensor([ids[:length]])
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                loss = model(input_ids=batch, labels=batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                times.append(time.perf_counter() - start)
            steps[length] = statistics.median(times)
        results["step seconds by row tokens"] = steps
        results["peak rss MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    small, large = results["1024 positions"], results["8192 positions"]
    print(f"quickstart base (hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}):")
    print(f"  1,024 positions: {small['parameters']:,} parameters, {small['bytes']:,} bytes")  # type: ignore[index]
    print(f"  8,192 positions: {large['parameters']:,} parameters, {large['bytes']:,} bytes")  # type: ignore[index]
    print("one training step (full tuning, batch of 1 row):")
    for length, seconds in steps.items():
        print(f"  {length:5d} tokens: {seconds:6.3f} s  x{seconds / steps[512]:.1f} of a 512-token row")
    print(f"peak RSS {results['peak rss MiB']:.0f} MiB")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "long_context.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
