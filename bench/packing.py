"""Packing against padding on variable-length SFT data: the same rows through the platform's runner
(the child process a worker starts), once with `packing` and once without, in one run.

    python bench/packing.py [--rows 1024]

Reports trained (non-padding) tokens per second and the wall time of each run.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from services.train.spec import Hyperparameters, JobSpec


def run(model_dir: Path, rows: list[dict], packing: bool, root: Path) -> dict:
    job = root / ("packed" if packing else "padded")
    job.mkdir()
    (job / "base").symlink_to(model_dir)
    (job / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    spec = JobSpec(
        base_model="local:///bench",
        method="sft",
        tuning="full",
        training_data=[],
        hyperparameters=Hyperparameters(
            epochs=1,
            batch_size=8,
            learning_rate=1e-3,
            max_sequence_length=512,
            packing=packing,
            checkpoint_count=1,
        ),
    )
    (job / "spec.json").write_text(json.dumps(spec.to_json()))
    subprocess.run([sys.executable, "-m", "services.train.runner", str(job)], check=True, capture_output=True)
    done = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines() if '"done"' in x][-1]
    return done


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1024)
    args = parser.parse_args()
    from services.data.presets import project_texts
    from services.train.tiny import build_tiny_model

    rng = random.Random(0)
    # Lengths spread widely (10 to 400 characters of answer), as real SFT data is.
    rows = [
        {
            "id": str(i),
            "messages": [
                {"role": "user", "content": "问" * rng.randint(5, 60)},
                {"role": "assistant", "content": "答" * int(rng.paretovariate(1.2) * 10 % 400 + 10)},
            ],
        }
        for i in range(args.rows)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_tiny_model(root / "model", project_texts(), hidden_size=128, layers=2)
        padded = run(model_dir, rows, False, root)
        packed = run(model_dir, rows, True, root)
    print(f"{args.rows} variable-length SFT rows, one epoch, batch 8, max length 512")
    for name, result in (("padding", padded), ("packing", packed)):
        print(
            f"  {name:<8} {result['train_runtime']:7.2f} s  {result['tokens_per_second']:9.0f} trained tokens/s  {result['step']:4d} steps"
        )
    print(f"  packing speed-up x{packed['tokens_per_second'] / padded['tokens_per_second']:.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "packing.json").write_text(json.dumps({"padded": padded, "packed": packed}, indent=2))


if __name__ == "__main__":
    main()
