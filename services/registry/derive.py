"""Derivations the registry runs in a child process (they need torch; the service does not):

    python -m services.registry.derive merge_lora - WORK       WORK/source (adapter), WORK/base
    python -m services.registry.derive convert_dtype bfloat16 WORK
    python -m services.registry.derive quantize int8 WORK

Writes a plain Hugging Face folder (safetensors, config, tokenizer) to WORK/output.

Quantization is weight-only with torchao (maintained by the PyTorch team, runs on the CPU here,
and transformers serializes it to safetensors): int8 per-channel (`Int8WeightOnlyConfig`) and int4
per-group of 32 (`IntxWeightOnlyConfig`, stored unpacked in int8 containers on the CPU).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
)


def copy_tokenizer(source: Path, output: Path) -> None:
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, output / name)


def main(operation: str, target: str, work: Path) -> None:
    source, output = work / "source", work / "output"
    if operation == "merge_lora":
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(work / "base")
        merged = PeftModel.from_pretrained(base, source).merge_and_unload()
        merged.save_pretrained(output, safe_serialization=True)
        copy_tokenizer(source if (source / "tokenizer.json").exists() else work / "base", output)
        return
    if operation == "convert_dtype":
        model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, target))
        model.save_pretrained(output, safe_serialization=True)
        copy_tokenizer(source, output)
        return
    if operation == "quantize":
        import torchao.quantization as q
        from torchao.quantization.granularity import PerGroup
        from transformers import TorchAoConfig

        config = (
            q.Int8WeightOnlyConfig()
            if target == "int8"
            else q.IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32))
        )
        model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=TorchAoConfig(quant_type=config), dtype=torch.float32
        )
        model.save_pretrained(output, safe_serialization=True)
        copy_tokenizer(source, output)
        return
    raise SystemExit(f"unknown operation {operation}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
