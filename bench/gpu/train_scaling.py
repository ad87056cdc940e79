"""Training past one GPU, three measurements through the platform's runner (the code a worker
runs: `services.train.runner`, alone or under torchrun), each printing one JSON line:

    python bench/gpu/train_scaling.py ddp      [--gpus 1,2,4,8]  tokens/s per GPU count, LoRA and DDP
    python bench/gpu/train_scaling.py qlora                       peak memory and tokens/s, qlora vs lora
    python bench/gpu/train_scaling.py kernels                     FlashAttention-2 + Liger on vs off

A Qwen2-0.5B-shaped model with random weights (no hub), SFT rows of a few hundred tokens, the same
global batch for every GPU count. Needs CUDA GPUs; `qlora` needs bitsandbytes, `kernels` needs
flash-attn and liger-kernel (the gpu-worker extra, plus `pip install flash-attn`). Never part of the
test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench._runner_jobs import job_folder, long_rows, qwen_shaped_model, run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("case", choices=("ddp", "qlora", "kernels"))
    parser.add_argument("--gpus", default="")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    import torch

    assert torch.cuda.is_available(), "this benchmark needs CUDA GPUs"
    out = Path(args.out or tempfile.mkdtemp(prefix="train-scaling-"))
    base = qwen_shaped_model(out / "base")
    rows = long_rows(args.rows)
    common = {"batch_size": args.batch, "learning_rate": 1e-4, "max_sequence_length": 1024}
    result: dict[str, object] = {"benchmark": f"train_{args.case}", "gpu": torch.cuda.get_device_name()}
    if args.case == "ddp":
        available = torch.cuda.device_count()
        counts = [int(n) for n in args.gpus.split(",") if n] or [n for n in (1, 2, 4, 8) if n <= available]
        speeds = {}
        for n in counts:
            done = run(job_folder(out / f"ddp-{n}", base, rows, **common), processes=n)
            speeds[n] = done["tokens_per_second"]
        result |= {
            "tokens_per_second": {str(n): round(v) for n, v in speeds.items()},
            "scaling_efficiency": {
                str(n): round(v / (n * speeds[counts[0]] / counts[0]), 3) for n, v in speeds.items()
            },
        }
    elif args.case == "qlora":
        for tuning in ("lora", "qlora"):
            done = run(job_folder(out / tuning, base, rows, tuning=tuning, **common))
            result[tuning] = {
                "tokens_per_second": round(done["tokens_per_second"]),
                "peak_memory_gib": round(done["peak_memory_bytes"] / 2**30, 2),
            }
        result["memory_ratio_qlora_over_lora"] = round(
            result["qlora"]["peak_memory_gib"] / result["lora"]["peak_memory_gib"],
            3,  # type: ignore[index]
        )
    else:
        for name, switch in (("off", "0"), ("on", "1")):
            done = run(
                job_folder(out / f"kernels-{name}", base, rows, **common), TUNEFORGE_TRAIN_FAST_KERNELS=switch
            )
            result[name] = {
                "tokens_per_second": round(done["tokens_per_second"]),
                "peak_memory_gib": round(done["peak_memory_bytes"] / 2**30, 2),
            }
        result["speedup"] = round(result["on"]["tokens_per_second"] / result["off"]["tokens_per_second"], 3)  # type: ignore[index]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
