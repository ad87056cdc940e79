"""OpenAI's fine-tuning job request, mapped onto a TuneForge training job.

    kwargs, notes = openai_job({"model": "qwen/1", "training_file": "support-chats/1",
                                "method": {"type": "supervised",
                                           "supervised": {"hyperparameters": {"n_epochs": 2}}}})
    client.train.create(**kwargs)       # or client.train.create_openai(request)

| OpenAI | TuneForge |
|---|---|
| `model` | `base_model` (a model version `m/N`, `m@alias`, or `local:///…`) |
| `training_file`, `validation_file` | the dataset versions the files were uploaded to (`name/N`) |
| `suffix` | `output_model` (the model the versions register under) |
| `seed` | `hyperparameters.seed` |
| `method.type` `supervised` / `dpo` / `reinforcement` | `sft` / `dpo` / `grpo` |
| `n_epochs`, `batch_size` | `epochs`, `batch_size` (`"auto"`: the platform's defaults, 3 and 16) |
| `learning_rate_multiplier` | `learning_rate` = multiplier × 3e-4 (the platform's default for LoRA) |
| `dpo` `beta` | `method_parameters.beta` (`"auto"`: 0.1) |
| `reinforcement` `grader` | a `grader` reward (`method_parameters.rewards`) |
| legacy top-level `hyperparameters` | as `supervised` |

What has no counterpart here (`reasoning_effort`, `compute_multiplier`, `eval_interval`,
`eval_samples`, `integrations`, `metadata`) is left out and named in `notes`; a value of the wrong
type or an unknown `method.type` is refused, naming its field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

# Hyperparameters' defaults in the train service (services/train/spec.py), which "auto" means.
DEFAULT_EPOCHS = 3.0
DEFAULT_BATCH_SIZE = 16
DEFAULT_LEARNING_RATE = 3e-4
METHODS = {"supervised": "sft", "dpo": "dpo", "reinforcement": "grpo"}
_UNUSED = ("reasoning_effort", "compute_multiplier", "eval_interval", "eval_samples")


class OpenAIJobError(ValueError):
    """A request field that cannot be mapped; `field` names it as OpenAI's request does."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _number(value: Any, field: str, *, integer: bool = False, positive: bool = True) -> float | None:
    """None for "auto" (or absent), else the number, checked."""
    if value is None or value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OpenAIJobError(field, f'must be a number or "auto", not {value!r}')
    if integer and int(value) != value:
        raise OpenAIJobError(field, f"must be a whole number, not {value!r}")
    if positive and value <= 0:
        raise OpenAIJobError(field, f"must be above 0, not {value!r}")
    return float(value)


def _dataset(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise OpenAIJobError(field, "name the dataset version the file was uploaded to (`name/N`)")
    return value


def openai_job(request: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`client.train.create` keyword arguments for OpenAI's job request, and notes on what was left out."""
    if not isinstance(request, Mapping):
        raise OpenAIJobError("request", "must be a JSON object")
    notes: list[str] = []
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIJobError("model", "name the base model version (`m/N`, `m@alias`) or local:///path")
    method = request.get("method") or {"type": "supervised", "supervised": {}}
    kind = method.get("type") if isinstance(method, Mapping) else None
    if kind not in METHODS:
        raise OpenAIJobError("method.type", f"{kind!r} is not one of {', '.join(METHODS)}")
    settings = method.get(kind) or {}
    if not isinstance(settings, Mapping):
        raise OpenAIJobError(f"method.{kind}", "must be an object")
    hp_given = dict(settings.get("hyperparameters") or {})
    if kind == "supervised" and request.get("hyperparameters"):
        hp_given = {**dict(request["hyperparameters"]), **hp_given}  # the legacy top-level field
    where = f"method.{kind}.hyperparameters"
    hyperparameters: dict[str, Any] = {}
    epochs = _number(hp_given.pop("n_epochs", None), f"{where}.n_epochs", integer=True)
    batch = _number(hp_given.pop("batch_size", None), f"{where}.batch_size", integer=True)
    multiplier = _number(hp_given.pop("learning_rate_multiplier", None), f"{where}.learning_rate_multiplier")
    if epochs is not None:
        hyperparameters["epochs"] = epochs
    if batch is not None:
        hyperparameters["batch_size"] = int(batch)
    if multiplier is not None:
        hyperparameters["learning_rate"] = multiplier * DEFAULT_LEARNING_RATE
    if request.get("seed") is not None:
        seed = _number(request["seed"], "seed", integer=True, positive=False)
        hyperparameters["seed"] = int(seed or 0)
    parameters: dict[str, Any] = {}
    if kind == "dpo":
        beta = _number(hp_given.pop("beta", None), f"{where}.beta")
        if beta is not None:
            parameters["beta"] = beta
    if kind == "reinforcement":
        grader = settings.get("grader")
        if not isinstance(grader, Mapping):
            raise OpenAIJobError(
                f"method.{kind}.grader", "a reinforcement job needs its grader (a JSON object)"
            )
        parameters["rewards"] = [{"type": "grader", "grader": json.dumps(grader, ensure_ascii=False)}]
    for key in sorted(hp_given):
        value = hp_given[key]
        if key in _UNUSED and value in (None, "auto"):
            continue
        notes.append(f"{where}.{key}={value!r} has no counterpart here and is left out")
    for key in ("integrations", "metadata"):
        if request.get(key):
            notes.append(f"{key} is left out (TuneForge keeps its own lineage and events)")
    kwargs: dict[str, Any] = {
        "base_model": model,
        "training_data": {_dataset(request.get("training_file"), "training_file"): 1.0},
        "method": METHODS[kind],
        "hyperparameters": hyperparameters,
    }
    if request.get("validation_file"):
        kwargs["validation_data"] = _dataset(request["validation_file"], "validation_file")
    if request.get("suffix"):
        kwargs["output_model"] = str(request["suffix"])
    if parameters:
        kwargs["method_parameters"] = parameters
    return kwargs, notes
