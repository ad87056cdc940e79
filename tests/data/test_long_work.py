"""The data service's long work as resources with a state: versions accepted PROCESSING and made by a
data worker (work that waits in the queue while no worker runs), watched to the end; insights and
materialized mixtures likewise; failures that only the work can find end as FAILED with a reason."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq

from services.kit.auth import ApiKeyStore
from services.suite.suite import LocalSuite
from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.api._calls import call
from tuneforge.data.v1 import data_service_pb2, dataset_pb2

PROCESSING = dataset_pb2.DATASET_VERSION_STATE_PROCESSING
READY = dataset_pb2.DATASET_VERSION_STATE_READY


def rows(n: int) -> str:
    return "".join(
        json.dumps(
            {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        )
        + "\n"
        for i in range(n)
    )


def upload_raw(client: Client, dataset: str, text: str) -> dataset_pb2.DatasetVersion:
    def requests():  # type: ignore[no-untyped-def]
        yield data_service_pb2.UploadDatasetVersionRequest(
            header=data_service_pb2.UploadDatasetVersionHeader(
                parent=client.data.dataset_name(dataset),
                options=data_service_pb2.IngestOptions(filename="chats.jsonl"),
            )
        )
        yield data_service_pb2.UploadDatasetVersionRequest(data=text.encode())
        yield data_service_pb2.UploadDatasetVersionRequest(
            finish=data_service_pb2.UploadDatasetVersionFinish()
        )

    return client.data._stub.UploadDatasetVersion(requests())


def test_work_waits_for_a_data_worker_and_is_watched_to_the_end(suite: LocalSuite, client: Client) -> None:
    client.data.create("queued", "sft")
    suite.processes["data-worker-0"].stop(grace=5)
    try:
        accepted = upload_raw(client, "queued", rows(12))
        assert accepted.state == PROCESSING and accepted.name.endswith("/versions/1")
        assert client.data.get_version("queued/1").state == PROCESSING
        error = expect_error("FAILED_PRECONDITION", lambda: list(client.data.rows("queued/1")))
        assert error.reason == "VERSION_PROCESSING" and "still being processed" in error.message
        expect_error("NOT_FOUND", client.data.get_version, "queued")  # `latest` is the newest READY one
    finally:
        suite.start_worker(0, kind="data")
    stream = client.data._stub.WatchDatasetVersion(
        data_service_pb2.WatchDatasetVersionRequest(name=accepted.name)
    )
    states = [v.state for v in stream]
    assert states[-1] == READY and set(states) <= {PROCESSING, READY}
    made = client.data.get_version("queued/1")
    assert made.row_count == 12 and {f.path for f in made.files} >= {"data.parquet", "source/chats.jsonl"}


def test_a_cleaning_that_removes_every_row_fails_with_its_reason(client: Client, tmp_path: Path) -> None:
    client.data.create("all-dupes", "sft")
    path = tmp_path / "d.jsonl"
    path.write_text(rows(3))
    client.data.upload("all-dupes", path)
    cleaned = client.data.clean("all-dupes/1", [{"keyword_filter": {"keywords": ["q"]}}])
    assert cleaned.state == dataset_pb2.DATASET_VERSION_STATE_FAILED
    assert cleaned.failure.reason == "EMPTY_RESULT" and "removed every row" in cleaned.failure.message
    error = expect_error("FAILED_PRECONDITION", lambda: list(client.data.rows(cleaned.name)))
    assert "could not be made" in error.message


def test_insight_is_a_resource_computed_once(client: Client, tmp_path: Path) -> None:
    client.data.create("seen", "sft")
    path = tmp_path / "s.jsonl"
    path.write_text(rows(20))
    client.data.upload("seen", path)
    stub = client.data._stub
    first = stub.ComputeDatasetInsight(
        data_service_pb2.ComputeDatasetInsightRequest(name=client.data.version_name("seen/1"))
    )
    assert "/versions/1/insights/" in first.name
    final = list(stub.WatchDatasetInsight(data_service_pb2.WatchDatasetInsightRequest(name=first.name)))[-1]
    assert final.state == dataset_pb2.COMPUTATION_STATE_READY and final.report["rows"] == 20
    again = stub.ComputeDatasetInsight(
        data_service_pb2.ComputeDatasetInsightRequest(name=client.data.version_name("seen/1"))
    )
    assert again.name == first.name and again.state == dataset_pb2.COMPUTATION_STATE_READY
    assert (
        stub.GetDatasetInsight(data_service_pb2.GetDatasetInsightRequest(name=first.name)).report["rows"]
        == 20
    )


def test_a_materialized_mixture_is_split_idempotent_private_and_deletable(
    suite: LocalSuite, client: Client, keys: ApiKeyStore, project: str, tmp_path: Path
) -> None:
    client.data.install_preset("math-grading")
    stub = client.data._stub
    request = data_service_pb2.MaterializeMixtureRequest(
        parent=f"projects/{project}",
        sources=[{"dataset_version": client.data.version_name("math-grading-train"), "sampling_rate": 0.5}],
        seed=3,
        validation_ratio=0.2,
        request_id="job-42-train",
    )
    mixture = stub.MaterializeMixture(request)
    assert stub.MaterializeMixture(request).name == mixture.name, "the same request id, the same mixture"
    final = list(stub.WatchMixture(data_service_pb2.WatchMixtureRequest(name=mixture.name)))[-1]
    assert final.state == dataset_pb2.COMPUTATION_STATE_READY
    ready = stub.GetMixture(data_service_pb2.GetMixtureRequest(name=mixture.name))
    planned = ready.plan.total_samples
    assert ready.train_rows + ready.validation_rows == planned and ready.validation_rows == round(
        planned * 0.2
    )
    for url in ready.urls:
        (tmp_path / url.path).write_bytes(urllib.request.urlopen(url.url).read())
    train = pq.read_table(tmp_path / "train.parquet").to_pylist()
    assert len(train) == ready.train_rows and all(r["id"].startswith("math-grading-train/v1:") for r in train)

    _, other_key = keys.create("someone-else", "member")
    with Client(suite.endpoints, api_key=other_key, project="someone-else") as other:
        get = data_service_pb2.GetMixtureRequest(name=mixture.name)
        expect_error("PERMISSION_DENIED", call, other.data._stub.GetMixture, get)
        expect_error(
            "PERMISSION_DENIED",
            call,
            other.data._stub.DeleteMixture,
            data_service_pb2.DeleteMixtureRequest(name=mixture.name),
        )
    stub.DeleteMixture(data_service_pb2.DeleteMixtureRequest(name=mixture.name))
    error = expect_error(
        "NOT_FOUND", call, stub.GetMixture, data_service_pb2.GetMixtureRequest(name=mixture.name)
    )
    assert "does not exist" in error.message
