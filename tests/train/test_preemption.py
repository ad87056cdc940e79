"""Idle-priority jobs: they run on spare capacity and give the only worker to a normal job."""

from __future__ import annotations

import json
import time

from services.suite.suite import LocalSuite
from tests.train.test_training import FAST
from tuneforge import Client
from tuneforge.api.training import STATE_NAMES


def test_idle_job_is_preempted_by_a_normal_job_and_resumes_from_its_checkpoint(
    client: Client, base_model: str, math_data: None, suite: LocalSuite
) -> None:
    """On the shared suite's one worker (its preemption grace is 2 s)."""
    idle = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 1.0},
        priority="idle",
        hyperparameters={
            **FAST,
            "epochs": 6,
            "batch_size": 2,
            "checkpoint_interval_steps": 200,
            "checkpoint_count": 10,
        },
    )
    assert idle.priority == "idle"
    deadline = time.monotonic() + 120
    while client.train.get(idle.name).current_step < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    live = client.train.report(idle.name)  # on demand while it runs: from the points stored so far
    assert not live.final and not live.charts and live.diagnosis.verdict
    assert len(live.report["curves"]["loss"]) >= 5
    normal = client.train.create(
        base_model=base_model,
        training_data={"math-grading-train": 0.1},
        hyperparameters={**FAST, "epochs": 1},
    )
    states = []
    deadline = time.monotonic() + 120
    while STATE_NAMES[client.train.get(normal.name).state] != "succeeded" and time.monotonic() < deadline:
        states.append(STATE_NAMES[client.train.get(idle.name).state])
        time.sleep(0.2)
    normal_done = client.train.get(normal.name)
    assert STATE_NAMES[normal_done.state] == "succeeded", normal_done.error
    assert "preempted" in states, states
    assert STATE_NAMES[client.train.get(idle.name).state] != "succeeded", "the normal job finished first"

    done = client.train.wait(idle.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    assert done.preemptions == 1 and done.attempt == 2
    assert normal_done.end_time.ToDatetime() < done.end_time.ToDatetime()
    steps = [p.step for p in client.train.metrics(idle.name) if not p.has_validation_loss]
    assert steps == list(range(1, done.total_steps + 1)), "every step, once"
    kept = [c.step for c in client.train.checkpoints(idle.name)]
    log = (suite.data_dir / "logs" / "worker-0.log").read_text()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    records = [r for r in records if r.get("job") in (idle.name, normal.name)]
    resumed = [r["step"] for r in records if r.get("message") == "resuming from checkpoint"]
    # Resumed once, from the checkpoint written when it gave the worker up. That step may fall on a
    # scheduled checkpoint (every 200 steps); any other kept checkpoint is a scheduled one or the last.
    assert len(resumed) == 1 and resumed[0] in kept, (resumed, kept)
    scheduled = set(range(200, done.total_steps, 200)) | {done.total_steps}
    assert set(kept) <= scheduled | {resumed[0]}, kept
    assert not [r for r in records if r.get("message") == "step trained again"], "no step repeated"
    order = [
        (r["job"].rsplit("/", 1)[-1], r.get("state", "preempting"))
        for r in records
        if r.get("message") in ("job ended", "preempting idle job")
    ]
    idle_id, normal_id = idle.name.rsplit("/", 1)[-1], normal.name.rsplit("/", 1)[-1]
    assert order == [
        (idle_id, "preempting"),
        (idle_id, "preempted"),
        (normal_id, "succeeded"),
        (idle_id, "succeeded"),
    ], order
