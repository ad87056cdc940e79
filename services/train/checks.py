"""The checks of a new job against what the other services know (`facts.py`): pure functions, each
raising InvalidArgument on the field it names, and the one count of the steps a job will take.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.kit.errors import InvalidArgument
from services.train.spec import JobSpec

if TYPE_CHECKING:
    from services.train.facts import DatasetFacts, JobFacts

PREFIX = "training_job"


def planned_steps(spec: JobSpec, rows: int, world: int = 1) -> int:
    """Optimizer steps to train on `rows` rows with `world` processes: what the control plane plans
    and the runner counts, through the method's own samples per step (GRPO: per generation group)."""
    return spec.training_method.planned_steps(spec.hyperparameters, spec.method_parameters, rows, world)


def held_out(rows: int, ratio: float) -> int:
    """Rows a validation split of `ratio` holds out, as the data service splits: round(n x ratio),
    at least one when the ratio is positive and there are two rows."""
    if not ratio or rows < 2:
        return 0
    return min(max(round(rows * ratio), 1), rows - 1)


def local_model(folder: Path, allowed: tuple[Path, ...], field: str) -> dict[str, Any]:
    """A local Hugging Face folder inside a folder the operator allowed; returns its config."""
    if not any(folder.resolve().is_relative_to(d.resolve()) for d in allowed):
        raise InvalidArgument.field(
            field, f"{folder} is not inside a folder the operator allowed (TUNEFORGE_TRAIN_LOCAL_MODEL_DIRS)"
        )
    if not (folder / "config.json").exists():
        raise InvalidArgument.field(field, f"{folder} holds no config.json: not a Hugging Face model folder")
    if not (folder / "tokenizer.json").exists():
        raise InvalidArgument.field(field, "the model has no tokenizer.json (a fast tokenizer is required)")
    return json.loads((folder / "config.json").read_text())


def model_files(version: str, files: set[str], field: str) -> None:
    if "config.json" not in files:
        raise InvalidArgument.field(field, f"{version} holds no config.json: not a model")
    if "tokenizer.json" not in files:
        raise InvalidArgument.field(field, "the model has no tokenizer.json (a fast tokenizer is required)")


def target_modules(targets: list[str], linear: list[str], version: str) -> None:
    """Every LoRA target names a module the model has (matched as peft does: by its last names).
    Versions registered before their modules were catalogued (`linear` empty) are not checked."""
    if not linear:
        return
    known = set(linear)
    for i, target in enumerate(targets):
        if target != "all-linear" and target.rsplit(".", 1)[-1] not in known:
            raise InvalidArgument.field(
                f"training_job.lora.target_modules[{i}]",
                f"{target[:100]!r} is no module of {version}; its modules with weights are "
                f"{', '.join(sorted(known)[:24])}",
            )


def reward_model_files(version: str, files: set[str], field: str) -> None:
    if "config.json" not in files or "tokenizer.json" not in files:
        raise InvalidArgument.field(field, f"{version} needs config.json and tokenizer.json (a full model)")


def reward_model_head(version: str, config: dict[str, Any], field: str) -> None:
    architectures = config.get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise InvalidArgument.field(
            field,
            f"{version} is a {', '.join(architectures) or 'model without architectures'}; a reward model has a sequence-classification head",
        )


def references(spec: JobSpec, data: DatasetFacts, field: str) -> None:
    """Rewards that compare with the reference need one on every row."""
    needs = getattr(spec.method_parameters, "needs_references", lambda: [])()
    missing = int(data.insight.get("rows_without_reference") or 0)
    if needs and missing:
        examples = ", ".join(data.insight.get("rows_without_reference_examples") or [])
        raise InvalidArgument.field(
            f"{field}.dataset_version",
            f"the {needs[0]} reward compares with each row's reference, but {missing} rows of "
            f"{data.name} have none (first: {examples})",
        )


def replay_parent(spec: JobSpec) -> None:
    field = f"{PREFIX}.replay_share"
    if not spec.parent:
        raise InvalidArgument.field(
            field, "replay needs a base model that is a fine-tuned version (its training data is replayed)"
        )
    if not spec.parent["datasets"]:
        raise InvalidArgument.field(
            field, f"{spec.parent['version']} has no training data in its lineage to replay"
        )


def rows_over(insight: dict[str, Any], limit: int) -> int:
    """Rows whose training sequence is longer than `limit` tokens (from the insight's percentiles)."""
    percentiles = insight.get("sequence_tokens_percentiles") or []
    rows = int(insight.get("rows") or 0)
    if not percentiles:
        return 0
    above = sum(1 for p in percentiles[1:] if p > limit)
    return round(rows * above / (len(percentiles) - 1))


def both_labels(spec: JobSpec, facts: JobFacts) -> None:
    """KTO learns from desirable against undesirable answers: data with one label cannot teach it."""
    if spec.training_method.kind.value != "unpaired_preference":
        return
    totals = {"true": 0, "false": 0}
    for data in facts.training:
        for label, count in (data.insight.get("labels") or {}).items():
            totals[label] = totals.get(label, 0) + int(count)
    if sum(totals.values()) and not (totals["true"] and totals["false"]):
        only = "desirable (true)" if totals["true"] else "undesirable (false)"
        missing = "undesirable (false)" if totals["true"] else "desirable (true)"
        raise InvalidArgument.field(
            f"{PREFIX}.training_data",
            f"every one of the {sum(totals.values())} rows is labelled {only}: {spec.method} learns from the "
            f"contrast between desirable and undesirable answers; add {missing} rows "
            "(or train with sft on the desirable ones)",
        )


LENGTH_SLACK = 0.05


def fits(spec: JobSpec, facts: JobFacts, tokenized: list[dict[str, Any]], limit: int) -> None:
    """A job none of whose rows fits its context is refused now, with the numbers, rather than
    failing on a worker (NO_SAMPLES_FIT); so is one whose prompts alone fill the context, which
    truncating the answer cannot fix."""
    hp = spec.hyperparameters
    if not tokenized:
        return
    # The insight counts each message plus an allowance for the template's markers, not the template
    # itself: only rows clearly over the limit are refused here, the worker measures the rest exactly.
    clearly_over = int(limit * (1 + LENGTH_SLACK)) + 8
    shortest = min(
        (int(i["sequence_tokens_percentiles"][0]) for i in tokenized if i.get("sequence_tokens_percentiles")),
        default=0,
    )
    prompts = [
        int(i["prompt_sequence_tokens"]["min"]) for i in tokenized if i["prompt_sequence_tokens"].get("count")
    ]
    field = f"{PREFIX}.hyperparameters.max_sequence_length"
    model = f"the model allows {facts.base.position_limit} positions"
    if hp.truncate_overlength and hp.prompt_truncation == "none" and prompts and min(prompts) >= clearly_over:
        raise InvalidArgument.field(
            field,
            f"every prompt is at least {min(prompts)} tokens, over the {limit}-token context: truncate_overlength "
            "shortens the answer, which cannot help when the prompt alone is too long; set prompt_truncation "
            f"(left or middle), raise max_sequence_length ({model}) or shorten the prompts",
        )
    if shortest > clearly_over and not hp.truncate_overlength:
        raise InvalidArgument.field(
            field,
            f"no training row fits: the shortest is {shortest} tokens and the context is {limit} ({model}); "
            "raise max_sequence_length, set truncate_overlength (and prompt_truncation when prompts are long), "
            "or shorten the data",
        )


def job(spec: JobSpec, facts: JobFacts) -> dict[str, int]:
    """The checks that need every fact; returns what the job row records (planned steps, rows over
    the length)."""
    hp = spec.hyperparameters
    model_limit = facts.base.position_limit
    tokenized = [d.insight for d in facts.training if d.insight.get("sequence_tokens")]
    both_labels(spec, facts)
    if hp.max_sequence_length:
        if hp.max_sequence_length > model_limit:
            raise InvalidArgument.field(
                f"{PREFIX}.hyperparameters.max_sequence_length",
                f"{hp.max_sequence_length} is beyond the model's {model_limit} positions",
            )
        prompts = [
            int(i["prompt_sequence_tokens"]["min"])
            for i in tokenized
            if i["prompt_sequence_tokens"].get("count")
        ]
        if prompts and hp.max_sequence_length <= min(prompts):
            raise InvalidArgument.field(
                f"{PREFIX}.hyperparameters.max_sequence_length",
                f"{hp.max_sequence_length} tokens leave no room for an answer: the shortest prompt is {min(prompts)} tokens",
            )
    planned = sum(d.planned_rows for d in facts.training)
    steps = planned_steps(spec, planned - held_out(planned, spec.validation_split))
    if hp.checkpoint_interval_steps > steps:
        raise InvalidArgument.field(
            f"{PREFIX}.hyperparameters.checkpoint_interval_steps",
            f"{hp.checkpoint_interval_steps} is more than the {steps} steps this run will take: no checkpoint would be saved",
        )
    if hp.validation_interval_steps > steps:
        raise InvalidArgument.field(
            f"{PREFIX}.hyperparameters.validation_interval_steps",
            f"{hp.validation_interval_steps} is more than the {steps} steps this run will take",
        )
    if spec.auto_evaluation:
        unknown = [m for m in spec.auto_evaluation["metrics"] if m not in facts.metrics]
        if unknown:
            raise InvalidArgument.field(
                f"{PREFIX}.auto_evaluation.metrics", f"unknown metric {', '.join(unknown)}"
            )
    limit = min(hp.max_sequence_length or model_limit, model_limit)
    fits(spec, facts, tokenized, limit)
    return {"total_steps": steps, "overlength": sum(rows_over(i, limit) for i in tokenized)}
