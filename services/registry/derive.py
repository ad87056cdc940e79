"""Derivations the registry runs in a bounded child process (they need torch; the service does not):

    python -m services.registry.derive merge_lora - WORK       WORK/source (adapter), WORK/base
    python -m services.registry.derive convert_dtype bfloat16 WORK
    python -m services.registry.derive quantize int8 WORK

Writes a plain Hugging Face folder (safetensors, config, tokenizer) to WORK/output.

Everything is derived from the stored tensors only. `convert_dtype` never builds a model: it reads
each safetensors file tensor by tensor and writes it back in the target dtype (peak memory: one
shard). `merge_lora` and `quantize` build the model on the meta device first and refuse when its
config describes parameters the stored weights do not hold (a bare `config.json` would otherwise
make transformers allocate a default-size model), or when loading it would need more memory than
TUNEFORGE_DERIVE_MEMORY_BYTES; the parent also kills the child past that memory or its time limit.

Quantization is weight-only with torchao (maintained by the PyTorch team, runs on the CPU here,
and transformers serializes it to safetensors): int8 per-channel (`Int8WeightOnlyConfig`) and int4
per-group of 32 (`IntxWeightOnlyConfig`, stored unpacked in int8 containers on the CPU).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

from services.kit.children import die_with_parent

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
)
REFUSED_EXIT = 3  # the source cannot be derived as asked; the message is on stderr


class Refused(Exception):
    pass


def copy_tokenizer(source: Path, output: Path) -> None:
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, output / name)


def stored_tensors(folder: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor the folder's safetensors files hold, by name, with its shape (headers only)."""
    tensors: dict[str, tuple[int, ...]] = {}
    for path in sorted(folder.rglob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                tensors[name] = tuple(handle.get_slice(name).get_shape())
    return tensors


def check_against_weights(folder: Path, memory_limit: int) -> None:
    """The model the config describes, built on the meta device, is what the stored tensors hold,
    and loading it in float32 fits the memory limit."""
    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    held = stored_tensors(folder)
    unique = {name for name, _ in model.named_parameters(remove_duplicate=True)}  # tied weights once
    missing, wrong = [], []
    for name, parameter in model.state_dict().items():
        if name not in unique:
            continue
        if name not in held:
            missing.append(name)
        elif tuple(parameter.shape) != held[name]:
            wrong.append(f"{name} {tuple(parameter.shape)} (stored {held[name]})")
    parameters = sum(p.numel() for p in model.parameters())
    if missing:
        raise Refused(
            f"config.json describes {parameters:,} parameters the stored weights do not all hold: "
            f"{', '.join(missing[:3])}{f' and {len(missing) - 3} more' if len(missing) > 3 else ''}"
        )
    if wrong:
        raise Refused(f"config.json does not match the stored weights: {', '.join(wrong[:3])}")
    needed = parameters * 4 * 2  # float32 weights, once loaded and once being written
    if needed > memory_limit:
        raise Refused(
            f"loading {parameters:,} parameters needs about {needed / 1e9:.1f} GB; "
            f"the derivation limit is {memory_limit / 1e9:.1f} GB"
        )


def convert_dtype(source: Path, output: Path, target: str) -> None:
    """Tensor by tensor, one file at a time: floating-point tensors to `target`, others as stored."""
    dtype = getattr(torch, target)
    output.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir():
            continue
        (output / relative).parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            with safe_open(str(path), "pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {}
                for name in handle.keys():  # noqa: SIM118
                    tensor = handle.get_tensor(name)
                    tensors[name] = tensor.to(dtype) if tensor.is_floating_point() else tensor
            save_file(tensors, str(output / relative), metadata={**metadata, "format": "pt"})
        elif relative.as_posix() == "config.json":
            config = json.loads(path.read_text(encoding="utf-8"))
            config["torch_dtype"] = config["dtype"] = target
            (output / relative).write_text(json.dumps(config, indent=2), encoding="utf-8")
        elif relative.as_posix().endswith(".safetensors.index.json"):
            index = json.loads(path.read_text(encoding="utf-8"))
            index.setdefault("metadata", {}).pop("total_size", None)
            (output / relative).write_text(json.dumps(index, indent=2), encoding="utf-8")
        else:
            shutil.copy(path, output / relative)


def main(operation: str, target: str, work: Path) -> None:
    source, output = work / "source", work / "output"
    memory_limit = int(os.environ.get("TUNEFORGE_DERIVE_MEMORY_BYTES", str(8 * 1024**3)))
    if operation == "convert_dtype":
        convert_dtype(source, output, target)
        return
    if operation == "merge_lora":
        from peft import PeftModel

        check_against_weights(work / "base", memory_limit)
        base = AutoModelForCausalLM.from_pretrained(work / "base")
        merged = PeftModel.from_pretrained(base, source).merge_and_unload()
        merged.save_pretrained(output, safe_serialization=True)
        copy_tokenizer(source if (source / "tokenizer.json").exists() else work / "base", output)
        return
    if operation == "quantize":
        import torchao.quantization as q
        from torchao.quantization.granularity import PerGroup
        from transformers import TorchAoConfig

        check_against_weights(source, memory_limit)
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
    raise Refused(f"unknown operation {operation}")


if __name__ == "__main__":
    die_with_parent()
    try:
        main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
    except Refused as refused:
        print(refused, file=sys.stderr)
        sys.exit(REFUSED_EXIT)
