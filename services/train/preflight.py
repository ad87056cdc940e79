"""The pre-flight check: what would make a job fail or train wrongly, found before any training step.

Run by the runner before the model goes to its device (and alone for a `check_only` job, which
`tuneforge train check` creates):

- `vocabulary`: the tokenizer's ids fit the model's embedding (its size, the special tokens and
  every id of the checked rows);
- `chat_template`: the template renders every row shape of the job (with `tools` when rows have
  them, which it must not ignore), marks each assistant turn for the loss when it has
  `{% generation %}` markers, and otherwise renders the prompt as a prefix of prompt + answer (so
  the answer can be told apart);
- `packing` (with `hyperparameters.packing`): two rows through the model one by one and packed
  as TRL's padding-free collator packs them give the same logits on this model's attention path;
- `memory`: an estimate for the model, method, tuning, sequence length and batch against the
  device's memory, refused with the numbers and a smaller setting that fits.

Each finding names its check, the field to change and what was seen.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from services.kit.rows import Kind
from services.train.methods import masks
from services.train.methods.sft import has_generation_markers

ROWS_CHECKED = 32
GIB = 1024**3
CUDA_RESERVE = 1 * GIB  # the CUDA context and the allocator's slack


@dataclass
class Finding:
    check: str
    field: str
    message: str


@dataclass
class Memory:
    """The estimate, in bytes, by part."""

    weights: int
    gradients: int
    optimizer: int
    reference: int
    activations: int
    logits: int
    reserve: int = 0

    @property
    def total(self) -> int:
        return sum(asdict(self).values())


def describe(findings: list[Finding]) -> str:
    """The findings as one message (the job's error)."""
    return "; ".join(f"{f.check} ({f.field}): {f.message}" for f in findings)


# -- vocabulary and templates --------------------------------------------------------------------


def vocabulary(tokenizer: Any, config: Any, rows: list[dict[str, Any]]) -> list[Finding]:
    size = int(getattr(config, "vocab_size", 0) or 0)
    if not size:
        return []
    out = []
    if len(tokenizer) > size:
        out.append(
            Finding(
                "vocabulary",
                "base_model",
                f"the tokenizer has {len(tokenizer)} tokens and the model's embedding {size}: ids from "
                f"{size} on would index past it (resize the embedding when adding tokens)",
            )
        )
    for name in ("eos_token_id", "pad_token_id", "bos_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int) and value >= size:
            out.append(
                Finding("vocabulary", "base_model", f"the tokenizer's {name} {value} is not below {size}")
            )
    for row in rows:
        try:
            ids = row_ids(tokenizer, row)
        except Exception:  # a row the template cannot render: the chat_template check names it
            continue
        if ids and max(ids) >= size:
            out.append(
                Finding(
                    "vocabulary",
                    "training_data",
                    f"row {row['id']} has token id {max(ids)}, not below {size}",
                )
            )
            break
    return out


def row_ids(tokenizer: Any, row: dict[str, Any]) -> list[int]:
    """The row's token ids as rendered for training (text rows: the text)."""
    if "text" in row:
        return list(tokenizer(row["text"][:4000], add_special_tokens=False)["input_ids"])
    messages = row.get("messages") or [*row["prompt"], *(row.get("chosen") or row.get("completion") or [])]
    return list(
        tokenizer.apply_chat_template(
            masks.unweighted(messages), tools=_tools(row), tokenize=True, return_dict=True
        )["input_ids"]
    )


def _tools(row: dict[str, Any]) -> Any:
    return json.loads(row["tools"]) if row.get("tools") else None


def _render(tokenizer: Any, messages: list[dict[str, Any]], tools: Any = None, prompt: bool = False) -> str:
    return str(
        tokenizer.apply_chat_template(
            masks.unweighted(messages), tools=tools, tokenize=False, add_generation_prompt=prompt
        )
    )


def templates(kind: Kind, tokenizer: Any, rows: list[dict[str, Any]]) -> list[Finding]:
    """The chat template against every row shape of the job (the first of each error only)."""
    if kind == Kind.TEXT:
        return []
    if not tokenizer.chat_template:
        return [
            Finding(
                "chat_template",
                "base_model",
                "the tokenizer has no chat template: conversations cannot be rendered",
            )
        ]
    markers = has_generation_markers(tokenizer)
    for row in rows:
        try:
            problem = _row_template(kind, tokenizer, row, markers)
        except masks.MaskError as exc:
            problem = str(exc)
        except Exception as exc:  # a template that raises (jinja's errors, a missing key)
            problem = f"row {row['id']}: the chat template fails: {type(exc).__name__}: {exc}"
        if problem:
            return [Finding("chat_template", "base_model", problem)]
    return []


def _row_template(kind: Kind, tokenizer: Any, row: dict[str, Any], markers: bool) -> str:
    tools = _tools(row)
    if tools is not None and _render(tokenizer, row.get("messages") or row["prompt"], tools) == _render(
        tokenizer, row.get("messages") or row["prompt"]
    ):
        return f"row {row['id']} has tools and the chat template ignores them: the model would not see the tool definitions"
    if kind == Kind.SFT:
        if markers:
            encoded = masks.masked_row(tokenizer, row, mask_reasoning=False, markers=True)
            trained = tokenizer.decode(
                [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
            )
            last = row["messages"][-1]
            if last.get("weight") != 0 and _squash(last["content"][:40]) not in _squash(trained):
                return f"row {row['id']}: the template's generation markers do not cover the last answer"
            return ""
        return _prefix(tokenizer, row["messages"][:-1], row["messages"][-1:], tools, row)
    if kind == Kind.PROMPT_ONLY:
        _render(tokenizer, row["prompt"], tools, prompt=True)
        return ""
    for key in ("chosen", "rejected", "completion"):
        if row.get(key):
            problem = _prefix(tokenizer, row["prompt"], row[key], tools, row)
            if problem:
                return problem
    return ""


def _squash(text: str) -> str:
    return "".join(text.split())


def _prefix(
    tokenizer: Any,
    prompt: list[dict[str, Any]],
    answer: list[dict[str, Any]],
    tools: Any,
    row: dict[str, Any],
) -> str:
    head = _render(tokenizer, prompt, tools, prompt=True)
    whole = _render(tokenizer, [*prompt, *answer], tools)
    if not whole.startswith(head):
        return (
            f"row {row['id']}: the chat template renders the prompt differently once the answer follows, "
            "so the answer's tokens cannot be told apart from the prompt's"
        )
    return ""


# -- packing ---------------------------------------------------------------------------------------


def packing(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> list[Finding]:
    """Two rows one by one and packed as TRL's padding-free collator packs them: the same logits."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    sequences = [row_ids(tokenizer, r)[:48] for r in rows[:2]]
    if len(sequences) < 2 or min(map(len, sequences)) < 2:
        return []
    device = next(model.parameters()).device
    batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id or 0, padding_free=True)(
        [{"input_ids": s} for s in sequences]
    )
    batch.pop("labels")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            alone = [
                model(input_ids=torch.tensor([s], device=device), use_cache=False).logits[0].float()
                for s in sequences
            ]
            packed = (
                model(
                    **{k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}, use_cache=False
                )
                .logits[0]
                .float()
            )
    except Exception as exc:
        return [
            Finding(
                "packing",
                "hyperparameters.packing",
                f"the model cannot take packed rows: {type(exc).__name__}: {exc}",
            )
        ]
    finally:
        model.train(was_training)
    split = torch.split(packed, [len(s) for s in sequences])
    worst = max(float((a - p).abs().max()) for a, p in zip(alone, split, strict=True))
    scale = max(float(a.abs().max()) for a in alone)
    tolerance = (1e-3 if next(model.parameters()).dtype == torch.float32 else 3e-2) * (1 + scale)
    if worst > tolerance:
        attention = getattr(model.config, "_attn_implementation", "?")
        return [
            Finding(
                "packing",
                "hyperparameters.packing",
                f"packed rows attend to each other on this model ({type(model).__name__}, {attention} "
                f"attention): logits differ by {worst:.3g} from the rows alone; turn packing off",
            )
        ]
    return []


# -- memory ----------------------------------------------------------------------------------------


def parameter_counts(config: Any, spec: Any, folder: Any = None) -> tuple[int, int]:
    """(all parameters, trainable ones) of the job's model: read from the safetensors headers of
    `folder` when it has them (no weights loaded), else counted on the meta device. LoRA's are
    r x (in + out) for each adapted linear (all-linear: every 2-D weight but the embeddings and the
    output layer, as peft picks them)."""
    shapes = _stored_shapes(folder) if folder is not None else None
    if shapes is None:
        shapes = _meta_shapes(config)
    total = sum(math.prod(shape) for shape in shapes.values())
    if not spec.adapter:
        return total, total
    targets = set(spec.lora.target_modules or [])
    trainable = 0
    for name, shape in shapes.items():
        module = name.removesuffix(".weight")
        if len(shape) != 2 or not name.endswith(".weight") or "embed" in module or "lm_head" in module:
            continue
        if not targets or module.rsplit(".", 1)[-1] in {t.rsplit(".", 1)[-1] for t in targets}:
            trainable += spec.lora.rank * (shape[0] + shape[1])
    return total, trainable


def _stored_shapes(folder: Any) -> dict[str, tuple[int, ...]] | None:
    from pathlib import Path

    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        with safe_open(str(path), framework="numpy") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def _meta_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def estimate(
    config: Any, spec: Any, max_length: int, *, total: int, trainable: int, dtype_bytes: int, cuda: bool
) -> Memory:
    """Bytes one training process needs: weights, gradients and AdamW's two states (in the weights'
    dtype) for the trained parameters, a frozen reference copy (DPO/KTO/ORPO, full tuning),
    activations kept for the backward pass (~34 x hidden per token and layer in 2-byte units,
    Korthikanti et al.; LoRA's dropout adds a copy of each adapted linear's input; the attention
    scores on the eager path) and the logits with their float32 copy and gradient.
    `bench/preflight_memory.py` compares it with the measured peak."""
    hp = spec.hyperparameters
    method = spec.training_method
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    heads = int(getattr(config, "num_attention_heads", 0) or 1)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    length = max_length
    rows = max(1, hp.batch_size // spec.resources.processes)  # each process holds its share
    if method.follows_reward:  # GRPO: prompts with their completions, the batch counting generations
        length = max_length + int(spec.method_parameters.max_completion_length)
    if method.uses_reference or method.name == "orpo":
        rows *= 2  # chosen and rejected go through together
    tokens = rows * length
    activations = layers * tokens * hidden * 34 * dtype_bytes // 2
    if spec.adapter and spec.lora.dropout > 0:
        # peft's dropout keeps each adapted linear's dropped input (all-linear: q k v o gate up take
        # the hidden size, down the intermediate size)
        intermediate = int(getattr(config, "intermediate_size", 0) or 4 * hidden)
        activations += layers * tokens * (6 * hidden + intermediate) * dtype_bytes
    if getattr(config, "_attn_implementation", "sdpa") == "eager":
        activations += layers * rows * heads * length * length * 5 * dtype_bytes // 2
    lora_weights = trainable * dtype_bytes if spec.adapter else 0
    # qlora: the frozen base in 4-bit NF4, about half a byte a weight with its double-quantized scales
    base_bytes = total * 0.5 + total // 64 * 0.5 if spec.tuning == "qlora" else total * dtype_bytes
    return Memory(
        weights=int(base_bytes) + lora_weights,
        gradients=trainable * dtype_bytes,
        optimizer=2 * trainable * dtype_bytes,
        reference=total * dtype_bytes if method.uses_reference and not spec.adapter else 0,
        activations=activations,
        logits=tokens * vocab * (dtype_bytes + 8),
        reserve=CUDA_RESERVE if cuda else 0,
    )


def device_memory(cuda: bool) -> int:
    """Bytes the job may use: the GPU's total memory, or the memory this machine has available."""
    if cuda:
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)
    import psutil

    return int(psutil.virtual_memory().available)


def memory(
    config: Any,
    spec: Any,
    max_length: int,
    *,
    cuda: bool,
    dtype_bytes: int,
    available: int | None = None,
    folder: Any = None,
) -> tuple[list[Finding], Memory, int, str]:
    """The estimate against the device; when it does not fit, a smaller setting that does."""
    counts: dict[str, tuple[int, int]] = {}  # by tuning: the headers are read once each

    def need(s: Any) -> Memory:
        if s.tuning not in counts:
            counts[s.tuning] = parameter_counts(config, s, folder)
        total, trainable = counts[s.tuning]
        return estimate(
            config, s, max_length, total=total, trainable=trainable, dtype_bytes=dtype_bytes, cuda=cuda
        )

    have = device_memory(cuda) if available is None else available
    wanted = need(spec)
    if wanted.total <= have:
        return [], wanted, have, ""
    hp = spec.hyperparameters
    field_name, suggestion = "base_model", ""
    batch, accumulation = hp.batch_size, hp.gradient_accumulation_steps
    while batch > 1 and not suggestion:
        batch, accumulation = batch // 2, accumulation * 2
        smaller = need(
            replace(
                spec, hyperparameters=replace(hp, batch_size=batch, gradient_accumulation_steps=accumulation)
            )
        )
        if smaller.total <= have:
            field_name = "hyperparameters.batch_size"
            suggestion = (
                f"batch_size {batch} with gradient_accumulation_steps {accumulation} (the same "
                f"{hp.batch_size * hp.gradient_accumulation_steps} rows a step) needs {_gib(smaller.total)}"
            )
    if not suggestion and spec.tuning == "full":
        lora = need(replace(spec, tuning="lora"))
        if lora.total <= have:
            field_name, suggestion = "tuning_mode", f"tuning_mode lora needs {_gib(lora.total)}"
    message = (
        f"the job needs about {_gib(wanted.total)} ({_parts(wanted)}) and the "
        f"{'GPU' if cuda else 'machine'} has {_gib(have)}; "
        + (suggestion or "no smaller batch fits: use a smaller model or a larger device")
    )
    return [Finding("memory", field_name, message)], wanted, have, suggestion


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def _parts(m: Memory) -> str:
    return ", ".join(f"{k} {_gib(v)}" for k, v in asdict(m).items() if v)


def sample_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows checked: the first ones, and the first of each rarer shape (tools, weights, reasoning)."""
    picked = rows[:ROWS_CHECKED]
    for test in (
        lambda r: r.get("tools"),
        lambda r: any(m.get("weight") == 0 for m in r.get("messages") or []),
    ):
        extra = next((r for r in rows if test(r)), None)
        if extra is not None and extra not in picked:
            picked.append(extra)
    return picked
