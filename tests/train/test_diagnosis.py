"""The loss-curve diagnosis on synthetic curves: each case, and the borderline ones."""

from __future__ import annotations

import math
import random

import pytest

from services.train import report

JOB = "projects/p/trainingJobs/j"


def curve(values, *, validation=None, ids=None):
    points = [
        {
            "step": i + 1,
            "loss": v,
            "validation_loss": None,
            "learning_rate": 1e-4,
            "sample_ids": (ids or {}).get(i + 1, []),
        }
        for i, v in enumerate(values)
    ]
    for step, v in validation or []:
        points.append({"step": step, "loss": 0.0, "validation_loss": v})
    return points


def noisy(fn, n, noise=0.01, seed=0):
    rng = random.Random(seed)
    return [fn(i) * (1 + rng.uniform(-noise, noise)) for i in range(n)]


def diagnose(points, total=100, checkpoints=(), epochs=3.0, method="sft"):
    return report.diagnose(
        points, method=method, epochs=epochs, total_steps=total, checkpoints=list(checkpoints), job=JOB
    )


def test_converged_both_curves_flat():
    train = noisy(lambda i: 0.5 + 2.0 * math.exp(-i / 5), 100)
    validation = [(s, 0.6 + 2.0 * math.exp(-s / 5) + 0.001 * (s % 3)) for s in range(10, 101, 10)]
    d = diagnose(curve(train, validation=validation))
    assert d["verdict"] == "converged", d
    assert "Evaluate" in d["advice"][0]


def test_still_improving_suggests_more_epochs():
    train = noisy(lambda i: 3.0 - 0.02 * i, 100)
    validation = [(s, 3.1 - 0.02 * s) for s in range(10, 101, 10)]
    d = diagnose(curve(train, validation=validation), epochs=2.0)
    assert d["verdict"] == "still_improving", d
    assert d["suggested_epochs"] > 2.0


def test_still_improving_without_validation_follows_training_loss():
    d = diagnose(curve(noisy(lambda i: 3.0 - 0.015 * i, 100)))
    assert d["verdict"] == "still_improving"
    assert "validation_falling" not in d["flags"]


def test_overfitting_offers_the_best_checkpoint_and_fewer_epochs():
    train = noisy(lambda i: 3.0 * math.exp(-i / 30), 100)
    validation = [(s, 1.0 + 0.0004 * (s - 40) ** 2) for s in range(10, 101, 10)]
    checkpoints = [{"step": s, "validation_loss": v} for s, v in validation]
    d = diagnose(curve(train, validation=validation), checkpoints=checkpoints, epochs=4.0)
    assert d["verdict"] == "overfitting", d
    assert d["best_step"] == 40
    assert d["best_checkpoint"] == f"{JOB}/checkpoints/40"
    assert d["suggested_epochs"] == 2.0  # 40 of 100 steps of a 4-epoch run, rounded up to a half epoch
    assert any("register-checkpoint" in a for a in d["advice"])


def test_validation_rise_within_tolerance_is_not_overfitting():
    train = noisy(lambda i: 0.5 + 2.0 * math.exp(-i / 5), 100)
    validation = [(s, 1.0 + (0.01 if s == 100 else 0.0)) for s in range(10, 101, 10)]  # +1%: noise
    d = diagnose(curve(train, validation=validation))
    assert d["verdict"] == "converged", d


def test_unstable_names_steps_and_samples():
    train = noisy(lambda i: 0.4 + 2.0 * math.exp(-i / 5), 100)
    train[59] *= 4
    train[79] *= 3
    ids = {60: ["bad-1", "ok-7"], 80: ["bad-2"]}
    d = diagnose(curve(train, ids=ids))
    assert d["verdict"] == "unstable", d
    assert [(s["step"], s["sample_ids"]) for s in d["spikes"]] == [(60, ["bad-1", "ok-7"]), (80, ["bad-2"])]


def test_noise_and_a_small_bump_are_not_spikes():
    train = noisy(lambda i: 0.4 + 2.0 * math.exp(-i / 5), 100, noise=0.08, seed=3)
    train[60] *= 1.3  # below the 1.5x ratio
    d = diagnose(curve(train))
    assert d["spikes"] == [] and d["verdict"] == "converged", d


def test_the_steep_start_of_a_run_is_not_a_spike():
    d = diagnose(curve([8.0, 7.0, 5.0, 3.5, 2.0, 1.5, 1.2, 1.0, *noisy(lambda i: 0.9, 40)]))
    assert d["spikes"] == []


def test_diverging_stuck_nan_and_too_short():
    assert diagnose(curve(noisy(lambda i: 1.0 + 0.05 * i, 60)))["verdict"] == "diverging"
    assert diagnose(curve(noisy(lambda i: 2.0, 80, noise=0.003)), total=100)["verdict"] == "stuck"
    assert diagnose(curve([2.0] * 10 + [float("nan")]))["verdict"] == "nan"
    assert diagnose(curve([2.0, 1.9, 1.8]))["verdict"] == "too_short"


@pytest.mark.parametrize(
    ("losses", "total", "reason"),
    [
        ([1.0] * 5 + [float("nan")], 100, "LOSS_NAN"),
        ([1.0] * 10 + [2.5] * 10, 100, "LOSS_DIVERGING"),
        ([1.0] * 10 + [1.9] * 10, 100, None),  # below 2x: not diverging
        ([6.9, 6.0, 15.9, 15.6, 16.2, 16.7, 24.4, 22.1, 23.1, 19.9], 100, "LOSS_DIVERGING"),  # lr 0.5, seen
        ([7.0, 5.0, 3.0, 1.0, 0.5] + [0.3] * 10 + [0.9] * 10, 100, "LOSS_DIVERGING"),  # up from its low
        ([0.69, 0.5, 0.2, 0.05] + [0.001, 0.004] * 20, 100, None),  # tiny values doubling: not divergence
        ([1.0] * 20 + [1.0, 9.0] * 4 + [1.0] * 2, 100, None),  # spikes are not divergence
        ([2.0] * 60, 100, "LOSS_STUCK"),
        ([2.0] * 60, 400, None),  # stuck is judged after a quarter of the run
        ([2.0] * 30 + [1.9] * 30, 100, None),  # 5% lower: learning, slowly
    ],
)
def test_loss_anomaly_stops_only_real_failures(losses, total, reason):
    found = report.loss_anomaly(losses, total)
    assert (found[0] if found else None) == reason


def test_grpo_follows_the_reward():
    points = curve([0.0] * 30)
    for i, p in enumerate(points):
        p["method_metrics"] = {"reward": 0.1 + 0.02 * i}
    assert diagnose(points, method="grpo")["verdict"] == "reward_rising"
    for p in points:
        p["method_metrics"] = {"reward": 0.5}
    assert diagnose(points, method="grpo")["verdict"] == "reward_flat"


def test_report_and_chart():
    train = noisy(lambda i: 0.4 + 2.0 * math.exp(-i / 5), 50)
    built = report.build(
        curve(train, validation=[(25, 0.6), (50, 0.55)]),
        method="sft",
        epochs=1,
        total_steps=50,
        checkpoints=[],
        job=JOB,
    )
    assert built["curves"]["validation_steps"] == [25, 50]
    assert built["rules"]["spike_ratio"] == report.SPIKE_RATIO
    image = report.chart(built)
    assert image.startswith(b"\x89PNG")


def test_a_loss_that_collapses_at_once_is_not_diverging():
    # DPO on easy pairs: 0.69, then near zero within a step or two, with small ups and downs.
    losses = [0.6931, 0.0, 0.0, 0.03, 0.01, 0.02, 0.0003, 0.004, 0.003, 0.003, 0.002, 0.001, 0.05, 0.002]
    assert report.loss_anomaly(losses, 25) is None


def test_flat_at_the_uniform_baseline_is_not_learning_not_converged():
    vocabulary = 1000
    flat = noisy(lambda i: math.log(vocabulary) * 1.002, 40, noise=0.002)
    d = report.diagnose(
        curve(flat), method="sft", epochs=3, total_steps=40, checkpoints=[], vocab_size=vocabulary
    )
    assert d["verdict"] == "not_learning", d
    assert "uniform baseline" in d["summary"] and "learning rate" in d["advice"][0]
    assert d["uniform_loss"] == pytest.approx(math.log(vocabulary))


def test_flat_near_the_starting_loss_is_not_learning():
    flat = noisy(lambda i: 2.0, 40, noise=0.003)
    d = report.diagnose(
        curve(flat), method="sft", epochs=3, total_steps=40, checkpoints=[], vocab_size=50_000
    )
    assert d["verdict"] == "not_learning" and "below where it started" in d["summary"], d
    learned = noisy(lambda i: 0.5 + 2.0 * math.exp(-i / 5), 100)
    d = report.diagnose(
        curve(learned), method="sft", epochs=3, total_steps=100, checkpoints=[], vocab_size=50_000
    )
    assert d["verdict"] == "converged", d
