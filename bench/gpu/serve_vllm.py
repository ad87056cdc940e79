"""Serving on a GPU with vLLM: a ~0.5B-parameter model built from a config (random weights, no hub)
with 4 LoRA adapters, through the platform's vLLM engine (`services/serve/engine_vllm.py`, as a
serving process runs it) against vLLM's own AsyncLLMEngine doing the same work, in one run.

    python bench/gpu/serve_vllm.py [--requests 256] [--max-tokens 128] [--out /tmp/serve-vllm]

Needs a CUDA GPU and `pip install vllm`; never part of the test suite. Reports, for the base model
alone and for a mix of the 4 adapters (multi-LoRA, one base in memory): completion tokens/s with
all requests submitted at once, time to first token p50, and the platform/plain ratio. One JSON
object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PROMPT = "请判断学生的答案是否正确，并给出理由："


def build(out: Path) -> tuple[Path, list[Path]]:
    """A Qwen2-0.5B-shaped Llama (bf16) with the project's tiny tokenizer, and 4 LoRA adapters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from services.data.presets import project_texts
    from services.train.tiny import build_tiny_model

    base = out / "base"
    if not (base / "model.safetensors").exists() and not list(base.glob("*.safetensors")):
        tokenizer_dir = build_tiny_model(out / "tokenizer", project_texts(), vocab_size=8000)
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
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        torch.manual_seed(0)
        LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(base)
        tokenizer.save_pretrained(base)
    adapters = []
    for i in range(4):
        folder = out / f"adapter-{i}"
        if not (folder / "adapter_config.json").exists():
            torch.manual_seed(i + 1)
            model = LlamaForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
            lora = LoraConfig(
                r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False
            )
            get_peft_model(model, lora).save_pretrained(folder)
            del model
        adapters.append(folder)
    return base, adapters


async def plain_vllm(base: Path, adapters: list[Path], requests: int, max_tokens: int) -> dict:
    from vllm import AsyncEngineArgs, AsyncLLMEngine, SamplingParams
    from vllm.lora.request import LoRARequest

    engine = AsyncLLMEngine.from_engine_args(
        AsyncEngineArgs(
            model=str(base), enable_lora=True, max_loras=8, max_lora_rank=64, gpu_memory_utilization=0.45
        )
    )
    tokenizer = await engine.get_tokenizer()
    ids = tokenizer(PROMPT)["input_ids"]
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    loras = [LoRARequest(f"a{i}", i + 1, str(p)) for i, p in enumerate(adapters)]

    async def one(lora: object) -> tuple[float, int]:
        started, first, tokens = time.perf_counter(), None, 0
        async for output in engine.generate(
            {"prompt_token_ids": ids}, params, uuid.uuid4().hex, lora_request=lora
        ):
            first = first or time.perf_counter() - started
            tokens = len(output.outputs[0].token_ids)
        return first or 0.0, tokens

    results = {}
    for label, choose in (("base", lambda i: None), ("4_adapters", lambda i: loras[i % 4])):
        await asyncio.gather(*(one(choose(i)) for i in range(8)))  # warm up
        started = time.perf_counter()
        done = await asyncio.gather(*(one(choose(i)) for i in range(requests)))
        seconds = time.perf_counter() - started
        results[label] = {
            "tokens_per_second": round(sum(t for _, t in done) / seconds, 1),
            "ttft_ms_p50": round(statistics.median(f for f, _ in done) * 1000, 1),
        }
    engine.shutdown()
    return results


def platform_engine(base: Path, adapters: list[Path], requests: int, max_tokens: int) -> dict:
    from services.serve import engine_vllm
    from services.serve.engine import BASE_ADAPTER, Request

    loaded = engine_vllm.LoadedModel(base, "cuda")
    for i, folder in enumerate(adapters):
        loaded.add_adapter(f"a{i}", folder)
    batcher = engine_vllm.Batcher(loaded)
    ids = loaded.prompt_ids(None, PROMPT)

    def burst(choose, count: int) -> tuple[float, list[tuple[float, int]]]:  # type: ignore[no-untyped-def]
        out: list[tuple[float, int]] = [(0.0, 0)] * count
        events = [threading.Event() for _ in range(count)]
        started = time.perf_counter()

        def emit_for(i: int):  # type: ignore[no-untyped-def]
            first: list[float] = []

            def emit(delta: str, finish: str, usage: dict | None) -> None:
                if delta and not first:
                    first.append(time.perf_counter() - started)
                if finish:
                    out[i] = (first[0] if first else 0.0, (usage or {}).get("completion_tokens", 0))
                    events[i].set()

            return emit

        for i in range(count):
            # The platform's requests carry max_tokens; a random model rarely stops, like ignore_eos.
            batcher.submit(Request(choose(i), ids, max_tokens, 0.0, 1.0, [], None, emit_for(i)))
        for event in events:
            event.wait(600)
        return time.perf_counter() - started, out

    results = {}
    for label, choose in (("base", lambda i: BASE_ADAPTER), ("4_adapters", lambda i: f"a{i % 4}")):
        burst(choose, 8)
        seconds, done = burst(choose, requests)
        results[label] = {
            "tokens_per_second": round(sum(t for _, t in done) / seconds, 1),
            "ttft_ms_p50": round(statistics.median(f for f, _ in done) * 1000, 1),
        }
    batcher.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("/tmp/serve-vllm"))
    args = parser.parse_args()
    import torch

    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    base, adapters = build(args.out)
    plain = asyncio.run(plain_vllm(base, adapters, args.requests, args.max_tokens))
    ours = platform_engine(base, adapters, args.requests, args.max_tokens)
    print(
        json.dumps(
            {
                "gpu": torch.cuda.get_device_name(0),
                "model": "Qwen2-0.5B-shaped Llama, bf16, random weights; 4 LoRA adapters (rank 16)",
                "requests": args.requests,
                "max_tokens": args.max_tokens,
                "plain_vllm": plain,
                "tuneforge_vllm_engine": ours,
                "ratio": {
                    k: round(ours[k]["tokens_per_second"] / plain[k]["tokens_per_second"], 3) for k in plain
                },
                "multi_lora_vs_base": round(
                    ours["4_adapters"]["tokens_per_second"] / ours["base"]["tokens_per_second"], 3
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
