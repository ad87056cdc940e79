"""What the platform costs: tokens/s of an SFT or DPO job run through TuneForge (gRPC, queue,
worker, child runner, metrics with batch sample ids, the loss guard, checkpoints to S3) against a
plain TRL script on the same tiny model, the same rows and the same settings, in one run.

    python bench/train_overhead.py [--method sft|dpo] [--rows 512] [--hidden 256] [--layers 4]

Both numbers are trained tokens divided by the trainer's own train_runtime. The plain script uses
the same SFTConfig the runner builds (logging every step, the same checkpoint interval).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = r"""
import json, sys, time
from pathlib import Path
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer
model_dir, rows_file, out, method = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
rows = [{k: v for k, v in json.loads(l).items() if k != "id"} for l in rows_file.read_text().splitlines()]
tokenizer = AutoTokenizer.from_pretrained(model_dir)
common = dict(output_dir=str(out), num_train_epochs=1, per_device_train_batch_size=8, learning_rate=1e-3,
    logging_steps=1, save_strategy="steps", save_steps=20, save_total_limit=None, bf16=False, gradient_checkpointing=False,
    dataloader_pin_memory=False, report_to=[], max_length=256, disable_tqdm=True, seed=0, data_seed=0)
model = AutoModelForCausalLM.from_pretrained(model_dir)
if method == "dpo":
    trainer = DPOTrainer(model=model, args=DPOConfig(**common, beta=0.1), train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
else:
    trainer = SFTTrainer(model=model, args=SFTConfig(**common, assistant_only_loss=True), train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
result = trainer.train()
tokens = next(float(h["num_tokens"]) for h in reversed(trainer.state.log_history) if "num_tokens" in h)
print(json.dumps({"tokens": tokens, "runtime": result.metrics["train_runtime"]}))
"""


def run_runner_alone(model_dir: Path, rows_file: Path, job: Path, method: str) -> float:
    """The platform's training child on the same rows and settings, without the services around it."""
    from services.train.spec import Hyperparameters, JobSpec

    job.mkdir()
    (job / "base").symlink_to(model_dir)
    (job / "train.jsonl").write_text(rows_file.read_text())
    spec = JobSpec(
        base_model="local:///bench",
        method=method,
        tuning="full",
        training_data=[],
        hyperparameters=Hyperparameters(
            epochs=1,
            batch_size=8,
            learning_rate=1e-3,
            checkpoint_interval_steps=20,
            max_sequence_length=256,
            checkpoint_count=100,
        ),
    )
    (job / "spec.json").write_text(json.dumps(spec.to_json()))
    subprocess.run([sys.executable, "-m", "services.train.runner", str(job)], check=True, capture_output=True)
    done = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines() if '"done"' in x][-1]
    return done["tokens_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", choices=["sft", "dpo"], default="sft")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from services.data.presets import project_texts
    from services.suite.suite import LocalSuite
    from services.train.tiny import build_tiny_model
    from tuneforge import Client

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_tiny_model(
            root / "model", project_texts(), hidden_size=args.hidden, layers=args.layers
        )
        rng = random.Random(0)

        def turn(role: str, text: str) -> list[dict[str, str]]:
            return [{"role": role, "content": text}]

        rows = [
            {
                "id": str(i),
                "messages": turn("user", f"问题{i}：" + "天气" * rng.randint(5, 40))
                + turn("assistant", "回答" * rng.randint(5, 40)),
            }
            if args.method == "sft"
            else {
                "id": str(i),
                "prompt": turn("user", f"问题{i}：" + "天气" * rng.randint(5, 40)),
                "chosen": turn("assistant", "回答" * rng.randint(5, 40)),
                "rejected": turn("assistant", "不知道" * rng.randint(2, 20)),
            }
            for i in range(args.rows)
        ]
        rows_file = root / "rows.jsonl"
        rows_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        platform, plain, runner = [], [], []
        with (
            LocalSuite(root / "suite") as suite,
            Client(suite.endpoints, api_key=suite.admin_key, project="bench") as client,
        ):
            client.models.create("base")
            base = client.models.upload("base", model_dir).name
            client.data.create("rows", "sft" if args.method == "sft" else "preference")
            client.data.upload("rows", rows_file)
            for i in range(args.repeats):
                # Interleaved, so that the machine's state weighs on both alike.
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        PLAIN,
                        str(model_dir),
                        str(rows_file),
                        str(root / f"plain-{i}"),
                        args.method,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                plain.append(result["tokens"] / result["runtime"])
                runner.append(run_runner_alone(model_dir, rows_file, root / f"runner-{i}", args.method))
                job = client.train.create(
                    base_model=base,
                    method=args.method,
                    training_data={"rows": 1.0},
                    tuning="full",
                    hyperparameters={
                        "epochs": 1,
                        "batch_size": 8,
                        "learning_rate": 1e-3,
                        "checkpoint_interval_steps": 20,
                        "max_sequence_length": 256,
                        "checkpoint_count": 100,
                    },
                )
                done = client.train.wait(job.name, timeout=1800)
                if not done.final_model_version:
                    raise SystemExit(
                        f"the TuneForge job did not succeed: {done.error.reason} {done.error.message}"
                    )
                platform.append(done.metrics["tokens_per_second"])
                time.sleep(1)
    p, q, r = statistics.median(platform), statistics.median(plain), statistics.median(runner)
    print(
        f"{args.method.upper()} (full) of a {args.layers}-layer, hidden {args.hidden} model on {args.rows} rows, median of {args.repeats}"
    )
    print(f"  plain TRL script     {q:10.0f} tokens/s")
    print(
        f"  TuneForge runner     {r:10.0f} tokens/s   cost {100 * (1 - r / q):+.1f}%   (the training child alone)"
    )
    print(
        f"  TuneForge job        {p:10.0f} tokens/s   cost {100 * (1 - p / q):+.1f}%   (with the services, uploads, bookkeeping)"
    )
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"train_overhead_{args.method}.json").write_text(
        json.dumps({"platform": platform, "runner": runner, "plain": plain}, indent=2)
    )


if __name__ == "__main__":
    main()
