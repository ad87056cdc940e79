"""Inputs from a hostile or careless caller: each gets a clear error (never INTERNAL or UNKNOWN) and
bounded work, and never stalls the service for other callers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.data.v1 import dataset_pb2


def chats(texts: list[str]) -> str:
    return "".join(
        json.dumps({"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}]})
        + "\n"
        for t in texts
    )


def test_a_backtracking_pattern_fails_its_cleaning_in_bounded_time(
    client: Client, suite, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    client.data.create("aaa", "sft")
    path = tmp_path / "a.jsonl"
    path.write_text(chats(["a" * 28 + "!", "a" * 40 + "!", "plain"]))
    client.data.upload("aaa", path)

    # the probe's pattern: exponential on Python's re (23.9 s on one row), linear on the regex engine
    started = time.monotonic()
    cleaned = client.data.clean("aaa/1", [{"regex_filter": {"pattern": "(a+)+$"}}])
    assert cleaned.state == dataset_pb2.DATASET_VERSION_STATE_READY, cleaned.failure.message
    assert cleaned.row_count == 3, "no row ends in a run of a's"
    probe_seconds = time.monotonic() - started

    other = Client(suite.endpoints, api_key=suite.admin_key, project=client.project + "-other")
    answers: list[float] = []

    def list_elsewhere() -> None:
        while len(answers) < 20:
            begun = time.monotonic()
            other.data.list()
            answers.append(time.monotonic() - begun)
            time.sleep(0.05)

    lister = threading.Thread(target=list_elsewhere)
    lister.start()
    started = time.monotonic()
    # catastrophic even for a backtracking engine with memoisation: stopped at its time budget
    failed = client.data.clean("aaa/1", [{"regex_filter": {"pattern": "(a|aa)+$"}}])
    seconds = time.monotonic() - started
    lister.join()
    other.close()
    assert failed.state == dataset_pb2.DATASET_VERSION_STATE_FAILED
    assert failed.failure.reason == "REGEX_TIMEOUT" and "(a|aa)+$" in failed.failure.message
    assert "row" in failed.failure.message
    print(
        f"cleaning (a+)+$: {probe_seconds:.1f} s; (a|aa)+$: FAILED in {seconds:.1f} s; "
        f"another project's ListDatasets meanwhile: worst {max(answers) * 1000:.0f} ms"
    )
    assert max(answers) < 2.0, "another project's calls were held up"

    error = expect_error(
        "INVALID_ARGUMENT", client.data.clean, "aaa/1", [{"regex_filter": {"pattern": "a" * 1001}}]
    )
    assert error.violations[0].field.endswith("regex_filter.pattern") and len(error.message) < 400
