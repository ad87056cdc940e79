"""A peer that is down makes CreateTrainingJob UNAVAILABLE (retryable), never INVALID_ARGUMENT, and
nothing is queued; once it is back the same request succeeds."""

from __future__ import annotations

import pytest

from services.suite.suite import LocalSuite
from tests.registry.test_registry_api import expect_error
from tuneforge import Client


@pytest.mark.parametrize("peer", ["registry", "data"])
def test_a_peer_outage_during_create_is_unavailable(
    suite: LocalSuite, client: Client, base_model: str, math_data: None, peer: str
) -> None:
    arguments = {
        "base_model": base_model,
        "training_data": {"math-grading-train": 0.2},
        "hyperparameters": {"epochs": 1, "batch_size": 8},
    }
    suite.processes[peer].stop(grace=2)
    try:
        error = expect_error("UNAVAILABLE", client.train.create, **arguments)
    finally:
        suite.start_service(peer)
    assert error.reason == "PEER_UNAVAILABLE" and peer in error.message, error
    assert not error.violations, "an outage is not a bad field"
    assert list(client.train.list()) == [], "nothing was queued"
    job = client.train.create(**arguments)  # the SDK retries UNAVAILABLE while the peer reconnects
    assert job.total_steps > 0
    client.train.cancel(job.name)
