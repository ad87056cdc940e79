"""SFT throughput and MFU of a ~0.5B-parameter model on one GPU, built from a config (no hub).

    python bench/gpu/sft_mfu.py [--steps 30] [--seq 1024] [--batch 8] [--peak-tflops 989]

A Qwen2-0.5B-shaped Llama (hidden 896, 24 layers, 14 heads, 2 KV heads, vocab 151,936: ~494M
parameters) with random weights in bf16, trained with the same TRL SFTTrainer settings the
platform's runner uses, on random token sequences of fixed length (no padding). Reports tokens/s
and model FLOPs utilization: 6 × parameters × tokens/s (+ attention) over the GPU's bf16 dense peak
(989 TFLOP/s for an H100/H200 SXM; pass --peak-tflops for another GPU). Prints one JSON line too.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback
from trl import SFTConfig, SFTTrainer


class Timer(TrainerCallback):
    """Times steps after a warm-up, so compilation and allocation are not counted."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = 0.0
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step == self.warmup:
            torch.cuda.synchronize()
            self.start = time.perf_counter()
        elif state.global_step > self.warmup:
            self.steps += 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    config = LlamaConfig(
        vocab_size=151_936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        torch_dtype="bfloat16",
    )
    model = LlamaForCausalLM(config).to(dtype=torch.bfloat16)
    parameters = sum(p.numel() for p in model.parameters())
    generator = torch.Generator().manual_seed(0)
    rows = [
        {"input_ids": torch.randint(10, config.vocab_size, (args.seq,), generator=generator).tolist()}
        for _ in range(args.batch * (args.steps + 2))
    ]
    timer = Timer(args.warmup)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(
            output_dir="/tmp/sft-mfu",
            max_steps=args.steps,
            per_device_train_batch_size=args.batch,
            learning_rate=1e-4,
            bf16=True,
            logging_steps=10,
            save_strategy="no",
            report_to=[],
            max_length=args.seq,
            gradient_checkpointing=False,
            dataloader_pin_memory=True,
            disable_tqdm=True,
        ),
        train_dataset=Dataset.from_list(rows),
        callbacks=[timer],
    )
    trainer.train()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - timer.start
    tokens_per_second = timer.steps * args.batch * args.seq / seconds
    attention = 12 * config.num_hidden_layers * config.hidden_size * args.seq  # per token, forward + backward
    flops_per_token = 6 * parameters + attention
    mfu = tokens_per_second * flops_per_token / (args.peak_tflops * 1e12)
    result = {
        "gpu": torch.cuda.get_device_name(),
        "parameters": parameters,
        "seq": args.seq,
        "batch": args.batch,
        "timed_steps": timer.steps,
        "tokens_per_second": round(tokens_per_second),
        "mfu": round(mfu, 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
    }
    print(f"{result['gpu']}: {parameters / 1e6:.0f}M parameters, seq {args.seq}, batch {args.batch}")
    print(
        f"  {tokens_per_second:,.0f} tokens/s, MFU {100 * mfu:.1f}% of {args.peak_tflops:.0f} TFLOP/s, peak memory {result['peak_memory_gib']} GiB"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
