"""Malformed and hostile requests across the services: each gets a clear INVALID_ARGUMENT naming its
field (never INTERNAL or UNKNOWN), errors never echo unbounded input, and a request_id stays bound
to the request it was first used for."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from tests.conftest import write_model_folder
from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import data_service_pb2
from tuneforge.train.v1 import train_service_pb2, train_service_pb2_grpc, training_job_pb2

FAST = {"epochs": 1, "batch_size": 4, "max_sequence_length": 128}


def raw_call(
    client: Client, service: str, method: str, body: bytes, *, stream: bool = False
) -> grpc.RpcError:
    """Send `body` as it is (no serialization) and return the error it gets."""
    channel = client.channel(service)
    if stream:
        rpc = channel.stream_unary(method, request_serializer=None, response_deserializer=None)
        call = lambda: rpc(iter([body]), timeout=20)  # noqa: E731
    else:
        rpc = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        call = lambda: rpc(body, timeout=20)  # noqa: E731
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_undecodable_bodies_are_invalid_argument(client: Client) -> None:
    for service, method in (
        ("data", "/tuneforge.data.v1.DataService/ListDatasets"),
        ("registry", "/tuneforge.registry.v1.RegistryService/GetModel"),
        ("train", "/tuneforge.train.v1.TrainService/GetTrainingJob"),
        ("eval", "/tuneforge.eval.v1.EvalService/GetEvaluation"),
    ):
        error = raw_call(client, service, method, b"\xff\xff\xff\xff\x0f")
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, error.code(), error.details())
        assert "does not decode" in error.details()
    # an upload header whose filename is not UTF-8
    header = data_service_pb2.UploadDatasetVersionRequest(
        header=data_service_pb2.UploadDatasetVersionHeader(
            parent=client.data.dataset_name("d"),
            options=data_service_pb2.IngestOptions(filename="ZZZZ.jsonl"),
        )
    ).SerializeToString()
    error = raw_call(
        client,
        "data",
        "/tuneforge.data.v1.DataService/UploadDatasetVersion",
        header.replace(b"ZZZZ", b"\xff\xfe\xfd\xfc"),
        stream=True,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "UTF-8" in error.details()


def test_huge_names_and_filters_get_short_errors(client: Client) -> None:
    for name in ("x" * 8192, "projects/" + "a" * (1 << 20)):
        error = expect_error("INVALID_ARGUMENT", client.models.get, name)
        assert len(error.message) < 1100 and "characters" in error.message
    error = expect_error(
        "INVALID_ARGUMENT", lambda: list(client.data.list(filter=" AND ".join(["kind = sft"] * 100)))
    )
    assert "100 terms; at most 20" in error.message
    error = expect_error(
        "INVALID_ARGUMENT", lambda: list(client.data.list(filter='kind = "sft" AND ' * 1000 + "x"))
    )
    assert "at most 2000" in error.message
    error = expect_error("INVALID_ARGUMENT", lambda: list(client.train.list(filter='method = "nope"')))
    assert error.violations[0].field == "filter" and "method" in error.message


def test_negative_seeds_and_repeated_sources_are_refused(client: Client, tmp_path: Path) -> None:
    client.data.create("s", "sft")
    path = tmp_path / "s.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
            )
            + "\n"
            for i in range(6)
        )
    )
    client.data.upload("s", path)
    for call in (
        lambda: client.data.split("s/1", 0.2, seed=-1),
        lambda: client.data.plan_mixture({"s/1": 1.0}, seed=-5),
        lambda: client.data.create_mixture("s", {"s/1": 1.0}, seed=-5),
    ):
        error = expect_error("INVALID_ARGUMENT", call)
        assert error.violations[0].field == "seed", error.violations
    stub = client.data._stub
    twice = [
        common_pb2.DatasetVersionRef(dataset_version=client.data.version_name("s/1"), sampling_rate=1.0),
        common_pb2.DatasetVersionRef(dataset_version=client.data.version_name("s/latest"), sampling_rate=1.0),
    ]
    with pytest.raises(grpc.RpcError) as caught:
        stub.PlanMixture(
            data_service_pb2.PlanMixtureRequest(parent=f"projects/{client.project}", sources=twice)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sources[0]" in caught.value.details()


@pytest.mark.parametrize("field", ["format", "schema", "error_policy"])
def test_enum_values_out_of_range_are_refused(client: Client, field: str) -> None:
    client.data.create("e", "sft")

    def requests():  # type: ignore[no-untyped-def]
        options = data_service_pb2.IngestOptions(filename="e.jsonl")
        setattr(options, field, 999)
        yield data_service_pb2.UploadDatasetVersionRequest(
            header=data_service_pb2.UploadDatasetVersionHeader(
                parent=client.data.dataset_name("e"), options=options
            )
        )
        yield data_service_pb2.UploadDatasetVersionRequest(data=b'{"prompt": "p", "completion": "c"}\n')
        yield data_service_pb2.UploadDatasetVersionRequest(
            finish=data_service_pb2.UploadDatasetVersionFinish()
        )

    with pytest.raises(grpc.RpcError) as caught:
        client.data._stub.UploadDatasetVersion(requests())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert f"options.{field}" in caught.value.details() and "999" in caught.value.details()
    assert list(client.data.list_versions("e")) == [], "nothing stored"


def test_training_jobs_with_wrong_lora_or_data_are_refused(
    client: Client, base_model: str, math_data: None
) -> None:
    base = {"base_model": base_model, "training_data": {"math-grading-train": 0.2}, "hyperparameters": FAST}
    error = expect_error("INVALID_ARGUMENT", client.train.create, **base, lora={"alpha": -1})
    assert "lora.alpha" in {v.field.removeprefix("training_job.") for v in error.violations}
    error = expect_error(
        "INVALID_ARGUMENT", client.train.create, **base, lora={"target_modules": ["q_proj", "nope_proj"]}
    )
    assert error.violations[0].field == "training_job.lora.target_modules[1]" and "q_proj" in error.message
    error = expect_error(
        "INVALID_ARGUMENT", client.train.create, **{**base, "hyperparameters": {**FAST, "seed": -3}}
    )
    assert "hyperparameters.seed" in {v.field.removeprefix("training_job.") for v in error.violations}
    ref = common_pb2.DatasetVersionRef(
        dataset_version=client.data.version_name("math-grading-train"), sampling_rate=1.0
    )
    job = training_job_pb2.TrainingJob(base_model=base_model, training_data=[ref] * 1000)
    stub = train_service_pb2_grpc.TrainServiceStub(client.channel("train"))
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateTrainingJob(
            train_service_pb2.CreateTrainingJobRequest(parent=f"projects/{client.project}", training_job=job)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "training_data[1]" in caught.value.details() and "name each version once" in caught.value.details()
    assert list(client.train.list()) == [], "nothing was queued"


def test_a_request_id_is_bound_to_its_request(client: Client, base_model: str, math_data: None) -> None:
    first = client.evals.create(
        [base_model], "math-grading-eval", metrics=["bleu4"], max_new_tokens=2, request_id="e-1"
    )
    again = client.evals.create(
        [base_model], "math-grading-eval", metrics=["bleu4"], max_new_tokens=2, request_id="e-1"
    )
    assert again.name == first.name
    error = expect_error(
        "INVALID_ARGUMENT",
        client.evals.create,
        [base_model],
        "math-grading-eval",
        metrics=["rouge_l"],
        max_new_tokens=2,
        request_id="e-1",
    )
    assert error.reason == "REQUEST_ID_REUSED" and error.violations[0].field == "request_id"
    client.models.create("idem-a", request_id="m-1")
    error = expect_error("INVALID_ARGUMENT", client.models.create, "idem-b", request_id="m-1")
    assert error.reason == "REQUEST_ID_REUSED"
    # a failed call does not bind its id
    expect_error("INVALID_ARGUMENT", client.models.create, "Bad_Id", request_id="m-2")
    assert client.models.create("idem-c", request_id="m-2").name.endswith("/models/idem-c")
    client.evals.wait(first.name, timeout=300)


def test_an_evaluation_of_a_model_without_a_tokenizer_is_refused(
    client: Client, math_data: None, tmp_path: Path
) -> None:
    client.models.create("no-tokenizer")
    version = client.models.upload("no-tokenizer", write_model_folder(tmp_path / "m"))
    error = expect_error("INVALID_ARGUMENT", client.evals.create, [version.name], "math-grading-eval")
    assert error.reason == "NO_TOKENIZER" and error.violations[0].field == "evaluation.model_versions[0]"
    assert "never fetches one" in error.message


def test_lineage_references_must_exist_in_the_callers_project(client: Client, tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "m")
    client.models.create("lineage")
    for lineage, field in (
        ({"source_job": "projects/someone-else/trainingJobs/job-1"}, "lineage.source_job"),
        ({"source_job": f"projects/{client.project}/trainingJobs/no-such-job"}, "lineage.source_job"),
        (
            {
                "dataset_versions": [
                    {"dataset_version": "projects/someone-else/datasets/d/versions/1", "sampling_rate": 1.0}
                ]
            },
            "lineage.dataset_versions[0].dataset_version",
        ),
        (
            {
                "dataset_versions": [
                    {
                        "dataset_version": f"projects/{client.project}/datasets/none/versions/1",
                        "sampling_rate": 1.0,
                    }
                ]
            },
            "lineage.dataset_versions[0].dataset_version",
        ),
    ):
        for presigned in (False, True):
            error = expect_error(
                "INVALID_ARGUMENT",
                client.models.upload,
                "lineage",
                folder,
                lineage=lineage,
                presigned=presigned,
            )
            assert error.violations[0].field.endswith(field), (lineage, error.violations)
    assert list(client.models.list_versions("lineage")) == [], "nothing stored"


def test_dataset_state_filter_is_checked(client: Client) -> None:
    client.data.create("f", "sft")
    error = expect_error(
        "INVALID_ARGUMENT", lambda: list(client.data.list_versions("f", filter='state = "bogus"'))
    )
    assert "state" in error.message


def test_a_data_chunk_after_finish_is_refused_not_dropped(client: Client) -> None:
    client.data.create("late", "sft")

    def requests():  # type: ignore[no-untyped-def]
        yield data_service_pb2.UploadDatasetVersionRequest(
            header=data_service_pb2.UploadDatasetVersionHeader(
                parent=client.data.dataset_name("late"),
                options=data_service_pb2.IngestOptions(filename="l.jsonl"),
            )
        )
        yield data_service_pb2.UploadDatasetVersionRequest(data=b'{"prompt": "p", "completion": "c"}\n')
        yield data_service_pb2.UploadDatasetVersionRequest(
            finish=data_service_pb2.UploadDatasetVersionFinish()
        )
        yield data_service_pb2.UploadDatasetVersionRequest(data=b'{"prompt": "late", "completion": "c"}\n')

    with pytest.raises(grpc.RpcError) as caught:
        client.data._stub.UploadDatasetVersion(requests())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nothing may follow the finish" in caught.value.details()
    assert list(client.data.list_versions("late")) == [], "nothing stored"
