"""The training report: loss curves and what they mean.

The diagnosis follows the four cases users know from fine-tuning consoles (两条曲线同时收敛 /
同时下降 / 训练降验证升 / 曲线抖动), plus the failures that end a job. The rules, in order; the first
that holds is the verdict, and every one that holds is listed in `flags`:

1. `nan`        a training loss is NaN or infinite.
2. `too_short`  fewer than MIN_POINTS training points: nothing to judge.
3. `diverging`  after at least WINDOW steps, the median of the last WINDOW losses is above
                DIVERGE_RATIO x the reference and above it by more than DIVERGE_MIN_RISE; the
                reference is the lower of the starting loss (the first step's)
                and the lowest median of WINDOW consecutive steps so far. Isolated spikes do not move
                a median; a loss that climbs and stays up does.
4. `stuck`      after at least STUCK_MIN_STEPS steps, the median of the last WINDOW losses is within
                STUCK_TOLERANCE of the median of the first WINDOW: the model is not learning.
5. `unstable`   one or more spikes: a step whose loss exceeds both SPIKE_RATIO x the median of the
                SPIKE_LOOKBACK steps before it and that median + SPIKE_MADS robust deviations (MAD x
                1.4826, floored at 2% of the median). Spikes name their step and the ids of the
                samples in that step's batches.
6. `overfitting` with at least 3 validation points: the last validation loss is above the lowest by more
                than TOLERANCE (relative) while the training loss is not rising. The kept checkpoint
                with the lowest validation loss is offered for registration, and the epochs up to
                it are suggested.
7. `still_improving` the training loss (or, when validated, the validation loss) still falls: the
                median of the last fifth of the run is below the median of the fifth before it by more
                than TOLERANCE. Suggested epochs: x2 when it fell by more than 10%, else x1.5.
8. `not_learning` the curves are flat but the model learned nothing: the final loss (median of the
                last WINDOW) is within NEAR_BASELINE of the uniform baseline ln(vocabulary size) (the
                loss of a model that spreads its bets over every token) or above it, or it is less than
                NOT_LEARNING_DROP below the starting loss (median of the first three steps).
9. `converged`  otherwise: both curves flat within TOLERANCE, well below where they started. Evaluate
                the model.

GRPO has no likelihood loss: its report follows the mean reward (`reward_rising`, `reward_flat`,
`reward_falling`, same windows and TOLERANCE).

The runner stops a job early for rules 1, 3 and 4 (unless `ignore_loss_anomalies`), with the reasons
LOSS_NAN, LOSS_DIVERGING and LOSS_STUCK; `loss_anomaly` is the check it uses.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from services.kit.charts import png, pyplot
from services.train.methods import METHODS

MIN_POINTS = 6
WINDOW = 10
TOLERANCE = 0.02
DIVERGE_RATIO = 2.0
DIVERGE_MIN_RISE = 0.05  # nats: a doubling of a near-zero loss is not divergence
STUCK_TOLERANCE = 0.01
STUCK_MIN_STEPS = 60
SPIKE_LOOKBACK = 20
SPIKE_RATIO = 1.5
SPIKE_MADS = 6.0
SPIKE_WARMUP = 8
NEAR_BASELINE = 0.05  # relative to ln(vocabulary size)
NOT_LEARNING_DROP = 0.05  # relative to the starting loss

RULES = {
    "window": WINDOW,
    "tolerance": TOLERANCE,
    "diverge_ratio": DIVERGE_RATIO,
    "diverge_min_rise": DIVERGE_MIN_RISE,
    "stuck_tolerance": STUCK_TOLERANCE,
    "stuck_min_steps": STUCK_MIN_STEPS,
    "spike_lookback": SPIKE_LOOKBACK,
    "spike_ratio": SPIKE_RATIO,
    "spike_mads": SPIKE_MADS,
    "min_points": MIN_POINTS,
    "near_baseline": NEAR_BASELINE,
    "not_learning_drop": NOT_LEARNING_DROP,
}


class LossGuard:
    """The loss checks of rules 1, 3 and 4, fed one loss per step in O(WINDOW log WINDOW) each."""

    def __init__(self, total_steps: int, *, trends: bool = True) -> None:
        """`trends=False`: only NaN stops the job (GRPO, whose loss is no likelihood, or a job with
        `ignore_loss_anomalies`)."""
        self.total_steps = total_steps
        self.trends = trends
        self.losses: list[float] = []
        self.lowest = math.inf  # the lowest median of WINDOW consecutive losses so far

    def add(self, loss: float) -> tuple[str, str] | None:
        """(reason, message) when the job should stop, else None."""
        self.losses.append(loss)
        if not math.isfinite(loss):
            return (
                "LOSS_NAN",
                "the training loss became NaN or infinite; lower the learning rate or check the data",
            )
        n = len(self.losses)
        if n < WINDOW or not self.trends:
            return None
        losses = self.losses
        start = losses[0]
        last = statistics.median(losses[-WINDOW:])
        self.lowest = min(self.lowest, last)
        reference = min(start, self.lowest)
        if last > DIVERGE_RATIO * reference and last - reference > DIVERGE_MIN_RISE:
            return (
                "LOSS_DIVERGING",
                f"the loss is diverging: median {last:.4g} over the last {WINDOW} steps against "
                f"{reference:.4g} before; lower the learning rate or add warmup",
            )
        first = statistics.median(losses[:WINDOW])
        if (
            n >= STUCK_MIN_STEPS
            and n >= self.total_steps // 4
            and abs(first - last) <= STUCK_TOLERANCE * abs(first)
        ):
            return (
                "LOSS_STUCK",
                f"the loss has not moved in {n} steps (median {first:.4g} at the start, {last:.4g} now); "
                f"raise the learning rate or check that the data has something to learn",
            )
        return None


def loss_anomaly(losses: list[float], total_steps: int) -> tuple[str, str] | None:
    """The guard's verdict on a whole curve (the first anomaly it would have stopped at)."""
    guard = LossGuard(total_steps)
    for loss in losses:
        found = guard.add(loss)
        if found:
            return found
    return None


def spikes(steps: list[int], losses: list[float]) -> list[dict[str, Any]]:
    found = []
    for i in range(SPIKE_WARMUP, len(losses)):
        before = [v for v in losses[max(0, i - SPIKE_LOOKBACK) : i] if math.isfinite(v)]
        if len(before) < SPIKE_WARMUP:
            continue
        median = statistics.median(before)
        mad = statistics.median(abs(v - median) for v in before) * 1.4826
        spread = max(mad, 0.02 * abs(median))
        if losses[i] > SPIKE_RATIO * median and losses[i] > median + SPIKE_MADS * spread:
            found.append({"step": steps[i], "loss": losses[i], "baseline": median})
    return found


def _trend(values: list[float]) -> float:
    """Relative fall of the last fifth of the run against the fifth before it (positive: falling)."""
    size = max(2, len(values) // 5)
    last = statistics.median(values[-size:])
    before = statistics.median(values[-2 * size : -size])
    return (before - last) / abs(before) if before else 0.0


def _diagnose_reward(train: list[dict[str, Any]], result: dict[str, Any]) -> dict[str, Any]:
    """A method without a likelihood loss (GRPO): the mean reward's trend."""
    rewards = [p.get("method_metrics", {}).get("reward") for p in train]
    rewards = [r for r in rewards if r is not None]
    if len(rewards) < MIN_POINTS:
        return {
            **result,
            "verdict": "too_short",
            "summary": "Too few steps to judge the reward curve.",
            "advice": ["Train for more steps."],
            "flags": ["too_short"],
        }
    size = max(2, len(rewards) // 5)
    first, last = statistics.fmean(rewards[:size]), statistics.fmean(rewards[-size:])
    change = last - first
    scale = max(abs(first), 1e-6)
    if change > TOLERANCE * scale:
        verdict, summary = "reward_rising", f"The mean reward rose from {first:.3g} to {last:.3g}."
        advice = ["Evaluate the model; train longer if the reward is still rising at the end."]
    elif change < -TOLERANCE * scale:
        verdict, summary = "reward_falling", f"The mean reward fell from {first:.3g} to {last:.3g}."
        advice = ["Lower the learning rate or check the reward functions."]
    else:
        verdict, summary = "reward_flat", f"The mean reward stayed near {last:.3g}."
        advice = [
            "Check that the rewards vary between completions; raise the learning rate or the generations."
        ]
    return {**result, "verdict": verdict, "summary": summary, "advice": advice, "flags": [verdict]}


def _unjudgeable(steps: list[int], losses: list[float], result: dict[str, Any]) -> dict[str, Any] | None:
    """Rules 1 and 2: a NaN loss, or too few points to judge."""
    if any(not math.isfinite(v) for v in losses):
        bad = next(s for s, v in zip(steps, losses, strict=True) if not math.isfinite(v))
        return {
            **result,
            "verdict": "nan",
            "summary": f"The training loss became NaN or infinite at step {bad}.",
            "advice": ["Lower the learning rate, use warmup, or look for broken samples."],
            "flags": ["nan"],
        }
    if len(losses) < MIN_POINTS:
        return {
            **result,
            "verdict": "too_short",
            "summary": f"Only {len(losses)} training steps: too few to judge.",
            "advice": ["Train for more steps, or judge by evaluation."],
            "flags": ["too_short"],
        }
    return None


def _trend_flag(kind: str, trend: float) -> str:
    return (
        f"{kind}_falling" if trend > TOLERANCE else f"{kind}_rising" if trend < -TOLERANCE else f"{kind}_flat"
    )


def _validation(
    validation: list[dict[str, Any]],
    train_trend: float,
    checkpoints: list[dict[str, Any]],
    *,
    epochs: float,
    total_steps: int,
    job: str,
    flags: list[str],
    result: dict[str, Any],
) -> tuple[float | None, bool]:
    """Rule 6 from the validation curve: (its trend, or None with fewer than 3 points; overfitting)."""
    if len(validation) < 3:
        return None, False
    vsteps = [p["step"] for p in validation]
    vlosses = [p["validation_loss"] for p in validation]
    low = min(range(len(vlosses)), key=lambda i: (vlosses[i], vsteps[i]))
    last_rise = (vlosses[-1] - vlosses[low]) / abs(vlosses[low]) if vlosses[low] else 0.0
    val_trend = _trend(vlosses) if len(vlosses) >= 4 else (vlosses[-2] - vlosses[-1]) / abs(vlosses[-2] or 1)
    flags.append(_trend_flag("validation", val_trend))
    if not (low < len(vlosses) - 1 and last_rise > TOLERANCE and train_trend >= -TOLERANCE):
        return val_trend, False
    flags.append("overfitting")
    scored = [c for c in checkpoints if c.get("validation_loss") is not None]
    best = min(scored, key=lambda c: (c["validation_loss"], c["step"])) if scored else None
    best_step = best["step"] if best else vsteps[low]
    result["best_step"] = best_step
    if best and job:
        result["best_checkpoint"] = f"{job}/checkpoints/{best['step']}"
    if total_steps:
        result["suggested_epochs"] = max(0.5, math.ceil(2 * epochs * best_step / total_steps) / 2)
    return val_trend, True


def _verdict(
    flags: list[str],
    anomaly: tuple[str, str] | None,
    found: list[dict[str, Any]],
    overfit: bool,
    trends: tuple[float, float | None],
    epochs: float,
    result: dict[str, Any],
) -> tuple[str, str, list[str]]:
    """Rules 3-8 in order: the first that holds is the verdict."""
    train_trend, val_trend = trends
    advice: list[str] = []
    falling = (val_trend if val_trend is not None else train_trend) > TOLERANCE
    if "diverging" in flags:
        summary = f"The training loss climbed and stayed up: {anomaly[1] if anomaly else ''}."
        return "diverging", summary, ["Lower the learning rate (by 3-10x) or add warmup."]
    if "stuck" in flags:
        return (
            "stuck",
            "The training loss has not moved: the model is not learning.",
            [
                "Raise the learning rate, check the LoRA targets, and check that answers are not empty or identical."
            ],
        )
    if found:
        summary = f"The loss spikes at {len(found)} step{'s' if len(found) > 1 else ''} ({', '.join(str(s['step']) for s in found[:10])}): the batches there hold unusual samples."
        advice.append(
            "Inspect the samples named in each spike; clean or remove them (tuneforge data clean), then train again."
        )
        return "unstable", summary, advice
    if overfit:
        summary = f"The validation loss rose after step {result['best_step']} while the training loss kept falling: the model is overfitting."
        if result["best_checkpoint"]:
            advice.append(
                f"Register the best checkpoint: tuneforge train register-checkpoint {result['best_checkpoint']}."
            )
        advice.append(
            f"Train for fewer epochs ({result['suggested_epochs']:g}), add data, or lower the learning rate."
        )
        return "overfitting", summary, advice
    if falling:
        trend = val_trend if val_trend is not None else train_trend
        factor = 2.0 if trend > 0.10 else 1.5
        result["suggested_epochs"] = min(100.0, math.ceil(2 * epochs * factor) / 2)
        which = "Both curves are" if val_trend is not None else "The training loss is"
        summary = f"{which} still falling at the end ({trend:.1%} over the last fifth of the run)."
        advice.append(
            f"Train longer: about {result['suggested_epochs']:g} epochs, or continue from this model."
        )
        return "still_improving", summary, advice
    learned = _learned(result)
    if learned:
        return (
            "not_learning",
            learned,
            [
                "Raise the learning rate (3e-4 is advised for LoRA, 2e-5 for full tuning) or train for more epochs.",
                "Check the data: answers that are empty, random or unrelated to their prompts cannot be learned.",
                "Check that the tuning reaches the model (LoRA target modules, a rank that is not tiny).",
            ],
        )
    summary = (
        "The curves have flattened: training has converged."
        if val_trend is not None
        else "The training loss has flattened: training has converged."
    )
    return "converged", summary, ["Evaluate the model on held-out data."]


def _learned(result: dict[str, Any]) -> str:
    """Why flat curves mean nothing was learned ("" when something was)."""
    start, end, baseline = result["start_loss"], result["end_loss"], result["uniform_loss"]
    if baseline and end >= baseline * (1 - NEAR_BASELINE):
        return (
            f"The loss flattened at {end:.3f}, at the uniform baseline ln(vocabulary) = {baseline:.3f}: the model "
            "predicts no better than spreading its bets over every token. It has not learned the data."
        )
    if start > 0 and (start - end) / start < NOT_LEARNING_DROP:
        return (
            f"The loss flattened at {end:.3f}, less than {NOT_LEARNING_DROP:.0%} below where it started "
            f"({start:.3f}): the model has not learned the data."
        )
    return ""


def diagnose(
    points: list[dict[str, Any]],
    *,
    method: str,
    epochs: float,
    total_steps: int,
    checkpoints: list[dict[str, Any]],
    job: str = "",
    vocab_size: int = 0,
) -> dict[str, Any]:
    """`points`: metric points as dicts (step, loss, validation_loss or None, learning_rate,
    method_metrics, sample_ids); `checkpoints`: kept checkpoints (step, validation_loss);
    `vocab_size`: the model's, for the uniform baseline (0: unknown, not compared)."""
    train = sorted((p for p in points if p.get("validation_loss") is None), key=lambda p: p["step"])
    validation = sorted((p for p in points if p.get("validation_loss") is not None), key=lambda p: p["step"])
    steps = [p["step"] for p in train]
    losses = [p["loss"] for p in train]
    result: dict[str, Any] = {"suggested_epochs": 0.0, "best_checkpoint": "", "best_step": 0, "spikes": []}
    if METHODS[method].follows_reward:
        return _diagnose_reward(train, result)
    early = _unjudgeable(steps, losses, result)
    if early is not None:
        return early
    result["start_loss"] = statistics.median(losses[:3])
    result["end_loss"] = statistics.median(losses[-WINDOW:])
    result["uniform_loss"] = math.log(vocab_size) if vocab_size > 1 else 0.0
    found = spikes(steps, losses)
    by_step = {p["step"]: p for p in train}
    for spike in found:
        spike["sample_ids"] = list(by_step[spike["step"]].get("sample_ids") or [])
    result["spikes"] = found
    flags: list[str] = []
    anomaly = loss_anomaly(losses, total_steps)
    if anomaly and anomaly[0] == "LOSS_DIVERGING":
        flags.append("diverging")
    if anomaly and anomaly[0] == "LOSS_STUCK":
        flags.append("stuck")
    if found:
        flags.append("spikes")
    train_trend = _trend(losses)
    flags.append(_trend_flag("training", train_trend))
    val_trend, overfit = _validation(
        validation,
        train_trend,
        checkpoints,
        epochs=epochs,
        total_steps=total_steps,
        job=job,
        flags=flags,
        result=result,
    )
    verdict, summary, advice = _verdict(
        flags, anomaly, found, overfit, (train_trend, val_trend), epochs, result
    )
    flags.insert(0, verdict)
    return {
        **result,
        "verdict": verdict,
        "summary": summary,
        "advice": advice,
        "flags": list(dict.fromkeys(flags)),
    }


def build(
    points: list[dict[str, Any]],
    *,
    method: str,
    epochs: float,
    total_steps: int,
    checkpoints: list[dict[str, Any]],
    job: str,
    vocab_size: int = 0,
) -> dict[str, Any]:
    """The report as stored in `report.json`: curves as data, the diagnosis and the rules."""
    train = sorted((p for p in points if p.get("validation_loss") is None), key=lambda p: p["step"])
    validation = sorted((p for p in points if p.get("validation_loss") is not None), key=lambda p: p["step"])
    curves: dict[str, Any] = {
        "steps": [p["step"] for p in train],
        "loss": [p["loss"] for p in train],
        "learning_rate": [p.get("learning_rate", 0.0) for p in train],
        "validation_steps": [p["step"] for p in validation],
        "validation_loss": [p["validation_loss"] for p in validation],
    }
    keys = sorted({k for p in train for k in (p.get("method_metrics") or {})})
    for key in keys:
        curves[key] = [(p.get("method_metrics") or {}).get(key) for p in train]
    for key in sorted({k for p in validation for k in (p.get("method_metrics") or {})}):
        curves[f"validation_{key}"] = [(p.get("method_metrics") or {}).get(key) for p in validation]
    held_out = {}
    if method == "reward_model" and curves.get("validation_accuracy"):
        # The share of held-out pairs whose chosen answer the model scores above the rejected one.
        held_out["pairwise_accuracy"] = curves["validation_accuracy"][-1]
    return {
        **held_out,
        "training_job": job,
        "method": method,
        "curves": curves,
        "diagnosis": diagnose(
            points,
            method=method,
            epochs=epochs,
            total_steps=total_steps,
            checkpoints=checkpoints,
            job=job,
            vocab_size=vocab_size,
        ),
        "rules": RULES,
        "charts": ["loss.png"],
    }


def chart(report: dict[str, Any]) -> bytes:
    """loss.png: training loss, validation loss and the learning rate (grpo: the mean reward)."""
    plt = pyplot()
    curves = report["curves"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if METHODS[report["method"]].follows_reward and "reward" in curves:
        ax.plot(curves["steps"], curves["reward"], label="mean reward", color="tab:green")
        ax.set_ylabel("reward")
    else:
        ax.plot(curves["steps"], curves["loss"], label="training loss", color="tab:blue", linewidth=1)
        if curves["validation_steps"]:
            ax.plot(
                curves["validation_steps"],
                curves["validation_loss"],
                "o-",
                label="validation loss",
                color="tab:orange",
            )
        for spike in report["diagnosis"]["spikes"]:
            ax.axvline(spike["step"], color="tab:red", alpha=0.3, linewidth=1)
        ax.set_ylabel("loss")
    ax.set_xlabel("step")
    if curves["learning_rate"] and any(curves["learning_rate"]):
        lr = ax.twinx()
        lr.plot(
            curves["steps"],
            curves["learning_rate"],
            color="tab:gray",
            linestyle="--",
            linewidth=1,
            label="learning rate",
        )
        lr.set_ylabel("learning rate")
        lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.legend(loc="upper right")
    diagnosis = report["diagnosis"]
    ax.set_title(f"{report['training_job'].rsplit('/', 1)[-1]}: {diagnosis['verdict']}")
    fig.tight_layout()
    return png(fig)
