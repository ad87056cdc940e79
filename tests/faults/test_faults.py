"""The fault-injection harness, sized for the suite: about two and a half minutes of load with
every kind of fault at least once (each worker kind, each service, NATS, the S3 server down for
ten seconds). `python -m tests.faults.harness --minutes N` runs a longer soak."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.harness import FaultRun, Plan


@pytest.mark.timeout(900)
def test_kills_of_every_component_lose_nothing_and_duplicate_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    report = FaultRun(tmp_path, tiny_model_dir, Plan(seconds=150, seed=20261207)).run()
    print("fault injection:", json.dumps(report))
    assert report["faults_injected"] >= 14, report["faults"]
    assert report["jobs"] == 2 and report["evaluations"] == 2 and report["uploads"] >= 10
    assert report["lost"] == 0 and report["duplicated"] == 0 and report["corrupt"] == 0, report["problems"]
    assert report["bad_client_errors"] == 0, report["problems"]
