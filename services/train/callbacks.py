"""What the training child reports while it trains: `progress.jsonl` lines (metrics with the ids of
each step's samples, saved checkpoints), the loss guard, and preemption (a `preempt` file)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from services.train import report
from services.train.spec import JobSpec


class Progress:
    """`progress.jsonl`, one JSON object a line; `forward` also gets each (a Ray worker's channel
    to its driver)."""

    def __init__(
        self,
        path: Path,
        *,
        only_errors: bool = False,
        forward: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.file = path.open("a", buffering=1)
        self.only_errors = only_errors
        self.forward = forward

    def write(self, kind: str, **fields: Any) -> None:
        if self.only_errors and kind != "error":
            return
        record = {"type": kind, "time": time.time(), **fields}
        if self.forward is not None:
            self.forward(record)
        self.file.write(json.dumps(record) + "\n")


# Method-specific values worth keeping per step (TRL's log keys).
METHOD_METRICS = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "kl",
    "nll_loss",
    "log_odds_ratio",
    "reward",
    "reward_std",
    "accuracy",
    "margin",
)


class Stop(Exception):
    """The job must stop with this reason (written to progress as an error)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ProgressCallback(TrainerCallback):
    """Metrics at every log with the ids of the step's samples, checkpoints once fully written, the
    loss guard, and preemption (a `preempt` file in the job folder: checkpoint now and stop)."""

    def __init__(
        self, progress: Progress, job_dir: Path, ids: list[str] | None, spec: JobSpec, total_steps: int
    ) -> None:
        self.progress = progress
        self.job_dir = job_dir
        self.ids = ids
        self.spec = spec
        self.total_steps = total_steps
        self.last_tokens: tuple[float, float] | None = None
        self.last_eval_loss: float | None = None
        self.orders: list[list[int]] = []
        self.guard = report.LossGuard(
            total_steps,
            trends=not spec.training_method.follows_reward and not spec.hyperparameters.ignore_loss_anomalies,
        )
        self.stop: Stop | None = None
        self.preempted = False
        self.batches_per_epoch = 0

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):  # type: ignore[no-untyped-def]
        # After a resume the loss guard judges the whole run, not just what follows the checkpoint.
        for h in state.log_history:
            if "loss" in h:
                self.guard.add(float(h["loss"]))
        # Record each epoch's sample order as the (seeded, resumable) sampler draws it, so a step's
        # batches can be named. The sampler keeps its class and seed; only its draws are recorded.
        sampler = getattr(getattr(train_dataloader, "batch_sampler", None), "sampler", None)
        if self.ids is None or sampler is None or train_dataloader is None:
            return
        self.batches_per_epoch = len(train_dataloader)
        orders = self.orders
        original = type(sampler)

        def recording_iter(this: Any) -> Any:
            order = list(original.__iter__(this))
            orders.append(order)
            return iter(order)

        sampler.__class__ = type(f"Recording{original.__name__}", (original,), {"__iter__": recording_iter})

    def _sample_ids(self, args: Any, step: int) -> list[str]:
        if not self.ids or not self.orders or not self.batches_per_epoch:
            return []
        accumulation = args.gradient_accumulation_steps
        steps_per_epoch = max(1, math.ceil(self.batches_per_epoch / accumulation))
        within = (step - 1) % steps_per_epoch
        # Across processes a step takes `accumulation` batches of each process, dealt in turn from
        # one seeded order (accelerate's batch sharding): positions follow the whole batch.
        size = args.per_device_train_batch_size * args.world_size
        order = self.orders[-1]
        first, last = within * accumulation * size, (within + 1) * accumulation * size
        return [self.ids[i] for i in order[first:last] if i < len(self.ids)]

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        logs = logs or {}
        if "eval_loss" in logs:
            self.last_eval_loss = float(logs["eval_loss"])
            self.progress.write(
                "metric",
                step=state.global_step,
                epoch=state.epoch or 0.0,
                validation_loss=self.last_eval_loss,
                method_metrics={k: float(logs[f"eval_{k}"]) for k in METHOD_METRICS if f"eval_{k}" in logs},
            )
        if "loss" in logs:
            tokens_per_second = 0.0
            now = time.perf_counter()
            if "num_tokens" in logs:
                tokens = float(logs["num_tokens"])
                if self.last_tokens is not None and now > self.last_tokens[1]:
                    tokens_per_second = (tokens - self.last_tokens[0]) / (now - self.last_tokens[1])
                self.last_tokens = (tokens, now)
            loss = float(logs["loss"])
            self.progress.write(
                "metric",
                step=state.global_step,
                epoch=state.epoch or 0.0,
                loss=loss if math.isfinite(loss) else None,
                learning_rate=float(logs.get("learning_rate", 0.0)),
                grad_norm=float(logs.get("grad_norm", 0.0) or 0.0),
                tokens_per_second=tokens_per_second,
                method_metrics={k: float(logs[k]) for k in METHOD_METRICS if k in logs},
                sample_ids=self._sample_ids(args, state.global_step),
            )
            anomaly = self.guard.add(loss)
            if anomaly:
                self.stop = Stop(*anomaly)
                control.should_training_stop = True

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if _agreed((self.job_dir / "preempt").exists()) and not self.preempted and self.stop is None:
            self.preempted = True
            control.should_save = True
            control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        _barrier()  # every process has written its part (its RNG state, its optimizer shard)
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.progress.write(
            "checkpoint",
            step=state.global_step,
            epoch=state.epoch or 0.0,
            path=str(path),
            validation_loss=self.last_eval_loss,
            best=state.best_model_checkpoint == str(path),
        )


def _agreed(flag: bool) -> bool:
    """`flag` on the first process, for every process alike (they stop at the same step, or the
    others would wait forever in the next collective)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1 if flag else 0], device="cuda" if torch.cuda.is_available() else "cpu")
    dist.broadcast(value, src=0)
    return bool(value.item())


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
