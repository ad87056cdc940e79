"""Evaluations a careless or hostile caller might ask for: bounded, cancellable, clearly refused."""

from __future__ import annotations

import time

from tests.conftest import running
from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.api.evaluations import STATE_NAMES


def runner_children() -> list[int]:
    return running("services.eval.runner")


def test_repeated_metrics_are_refused_before_any_work(
    client: Client, base_model: str, math_data: None
) -> None:
    started = time.monotonic()
    error = expect_error(
        "INVALID_ARGUMENT", client.evals.create, [base_model], "math-grading-eval", metrics=["bleu4"] * 10000
    )
    assert error.violations[0].field == "evaluation.metrics" and "name each once" in error.message
    assert len(error.message) < 300 and time.monotonic() - started < 5
    error = expect_error(
        "INVALID_ARGUMENT",
        client.evals.create,
        [base_model],
        "math-grading-eval",
        metrics=["bleu4", "rouge_l", "bleu4"],
    )
    assert error.violations[0].field == "evaluation.metrics[2]" and "twice" in error.message
    assert list(client.evals.list()) == [], "nothing was queued"


def test_a_judge_in_another_project_is_named_on_its_own_field(
    client: Client, base_model: str, math_data: None
) -> None:
    elsewhere = "projects/someone-else/models/judge/versions/1"
    error = expect_error(
        "INVALID_ARGUMENT",
        client.evals.create,
        [base_model, base_model],
        "math-grading-eval",
        judge={"model_version": elsewhere},
    )
    assert error.violations[0].field == "evaluation.judge.model_version", error.violations


def test_a_running_evaluation_is_cancelled_and_its_runner_stopped(
    client: Client, base_model: str, math_data: None
) -> None:
    evaluation = client.evals.create([base_model], "math-grading-eval", max_new_tokens=2000, batch_size=1)
    deadline = time.monotonic() + 120
    while not runner_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runner_children(), "the evaluation started"
    cancelled = client.evals.cancel(evaluation.name)
    assert STATE_NAMES[cancelled.state] == "cancelled" and cancelled.HasField("end_time")
    final = client.evals.wait(evaluation.name, timeout=60)
    assert STATE_NAMES[final.state] == "cancelled" and not final.results
    deadline = time.monotonic() + 10
    while runner_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not runner_children(), "the runner outlives the cancellation"
    assert STATE_NAMES[client.evals.cancel(evaluation.name).state] == "cancelled", "cancelling again is fine"
    time.sleep(1.5)
    assert STATE_NAMES[client.evals.get(evaluation.name).state] == "cancelled", (
        "the worker did not overwrite it"
    )

    # the worker is free for the next one
    after = client.evals.create([base_model], "math-grading-eval", metrics=["bleu4"], max_new_tokens=2)
    done = client.evals.wait(after.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded"
    error = expect_error("FAILED_PRECONDITION", client.evals.cancel, after.name)
    assert error.reason == "ALREADY_ENDED"
