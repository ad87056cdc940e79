"""Several processes on one CPU node: the platform's runner as 2 gloo DDP processes of 1 thread
each against 1 process of 2 threads (the same total threads), same rows, same global batch, in
one run. Reports trained tokens/s of each (the trainer's token count over its train_runtime) and
the ratio. No goal: on CPU it shows what the DDP machinery costs or gains.

    python bench/ddp_cpu.py [--rows 512] [--hidden 256] [--layers 4] [--batch 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._runner_jobs import arithmetic_rows, job_folder, run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tuning", default="lora")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from services.data.presets import project_texts
    from services.train.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        base = build_tiny_model(
            Path(tmp) / "base", project_texts(), hidden_size=args.hidden, layers=args.layers, heads=4
        )
        rows = arithmetic_rows(args.rows)
        results: dict[str, list[float]] = {"one_process_2_threads": [], "two_processes_1_thread": []}
        for repeat in range(args.repeats):
            for name, processes, threads in (
                ("one_process_2_threads", 1, 2),
                ("two_processes_1_thread", 2, 1),
            ):
                folder = job_folder(
                    Path(tmp) / f"{name}-{repeat}",
                    base,
                    rows,
                    tuning=args.tuning,
                    batch_size=args.batch,
                    learning_rate=1e-3,
                )
                done = run(folder, processes, threads)
                results[name].append(done["tokens_per_second"])
        one = statistics.median(results["one_process_2_threads"])
        two = statistics.median(results["two_processes_1_thread"])
        report = {
            "benchmark": "ddp_cpu",
            "rows": args.rows,
            "hidden": args.hidden,
            "layers": args.layers,
            "global_batch": args.batch,
            "tuning": args.tuning,
            "one_process_tokens_per_second": round(one, 1),
            "two_processes_tokens_per_second": round(two, 1),
            "ratio_two_over_one": round(two / one, 3),
        }
        print(f"1 process × 2 threads: {one:,.0f} tokens/s; 2 DDP processes × 1 thread: {two:,.0f} tokens/s")
        print(json.dumps(report))


if __name__ == "__main__":
    main()
