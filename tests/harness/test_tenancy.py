"""The tenancy matrix, generated from the protos: every RPC of every service, called with a key of
project B on project A's resources (and with path tricks on A's names), and with a missing, wrong,
revoked and expired key. Expected: PERMISSION_DENIED or NOT_FOUND (INVALID_ARGUMENT for names that
do not parse), UNAUTHENTICATED for the bad keys, and no byte of A's data in any answer."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from services.kit.auth import ApiKeyStore
from services.kit.requests import named_projects
from services.suite.suite import LocalSuite
from tests.harness.rpcs import Rpc, all_rpcs, call, string_fields
from tuneforge import Client
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import data_service_pb2

# A's resource to put in a field, by the field's name (falling back to the RPC's noun, below).
FIELD_RESOURCES = {
    "source": "version",
    "dataset": "dataset",
    "dataset_version": "version",
    "validation_data": "version",
    "output_dataset": "dataset",
    "model": "model",
    "model_version": "model_version",
    "base_model": "model_version",
    "base_model_version": "model_version",
    "parent_version": "model_version",
    "derived_from": "model_version",
    "output_model": "model",
    "reward_model": "model_version",
    "tokenizer": "model_version",
    "teacher": "teacher",
    "judge": "teacher",
    "deployment": "deployment",
    "source_job": "job",
    "evaluation": "evaluation",
    "rating_task": "rating_task",
}
# The RPC's noun -> the resource its `name` (or, for List/Create, its `parent`) names.
NOUNS = [
    ("AnnotationItem", "item", "task"),
    ("AnnotationTask", "task", "project"),
    ("AugmentationRun", "run", "project"),
    ("AugmentationTemplate", "project", "project"),
    ("Teacher", "teacher", "project"),
    ("DatasetVersionUpload", "upload", "dataset"),
    ("DatasetVersion", "version", "dataset"),
    ("DatasetInsight", "insight", "version"),
    ("DatasetRows", "version", "version"),
    ("Dataset", "dataset", "project"),
    ("Mixture", "mixture", "project"),
    ("ModelVersionUpload", "upload_model", "model"),
    ("ModelVersion", "model_version", "model"),
    ("ModelAlias", "alias", "model"),
    ("AliasHistory", "model", "model"),
    ("Model", "model", "project"),
    ("LineageGraph", "model_version", "model_version"),
    ("Derivation", "derivation", "project"),
    ("Checkpoint", "checkpoint", "job"),
    ("TrainingReport", "job", "job"),
    ("MetricPoint", "job", "job"),
    ("TrainingJob", "job", "project"),
    ("Worker", "project", "project"),
    ("RatingItem", "rating_task", "rating_task"),
    ("RatingSummary", "rating_task", "rating_task"),
    ("RatingTask", "rating_task", "evaluation"),
    ("Rating", "rating_task", "rating_task"),
    ("SamplePrediction", "evaluation", "evaluation"),
    ("EvaluationReport", "evaluation", "evaluation"),
    ("Evaluation", "evaluation", "project"),
    ("Metric", "job", "job"),
    ("DeploymentStats", "deployment", "deployment"),
    ("CallLog", "deployment", "deployment"),
    ("Deployment", "deployment", "project"),
    ("Feedback", "call", "deployment"),
    ("DatasetFromLogs", "deployment", "deployment"),
    ("AuditLogEntrie", "project", "project"),
    ("ApiKey", "api_key", "project"),
    ("Project", "project", "project"),
    ("Preset", "project", "project"),
    ("Catalog", "project", "project"),
    ("Chat", "deployment", "deployment"),
]


def noun_targets(rpc: Rpc) -> tuple[str, str]:
    for noun, name_kind, parent_kind in NOUNS:
        if noun in rpc.name:
            return name_kind, parent_kind
    return "project", "project"


def tricks(name: str, project: str) -> list[str]:
    """A's name as a hostile caller might bend it."""
    return [
        name.replace(f"projects/{project}", f"projects/{project}/../b-side", 1),
        name.replace("/", "%2F"),
        name.upper(),
        name + "/",
        name + "/" + "x" * 2000,
    ]


@pytest.fixture(scope="module")
def tenants(
    suite: LocalSuite, tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[dict[str, object]]:
    """Project A holding one of every resource kind, and keys of project B (an admin's), of A
    (revoked, expired), for the matrix."""
    a, b = "ten-a-" + uuid.uuid4().hex[:6], "ten-b-" + uuid.uuid4().hex[:6]
    tmp = tmp_path_factory.mktemp("tenancy")
    names: dict[str, str] = {"project": f"projects/{a}"}
    with Client(suite.endpoints, api_key=suite.admin_key, project=a) as op:
        for project in (a, b):
            # The matrix sends hundreds of calls a second with B's key: past the default rate.
            op.iam.create_project(project, quota={"max_requests_per_second": 1e6})
        b_key = op.iam.create_key("admin", project=b).token
        revoked = op.iam.create_key("admin", project=a)
        op.iam.revoke_key(revoked.api_key.name)
        expired = op.iam.create_key("admin", project=a, expires_in_days=1 / 86400)
        op.models.create("base")
        version = op.models.upload("base", tiny_model_dir, lineage={"base_model": "hf://tiny"})
        names |= {"model": f"projects/{a}/models/base", "model_version": version.name}
        op.models.set_alias("base", "production", version.name)
        names["alias"] = f"projects/{a}/models/base/aliases/production"
        rows = tmp / "eval.jsonl"
        rows.write_text(
            "".join(
                json.dumps({"prompt": [{"role": "user", "content": f"q{i}"}], "reference": "r"}) + "\n"
                for i in range(4)
            )
        )
        op.data.create("evalset", "eval")
        data_version = op.data.upload("evalset", rows)
        names |= {"dataset": f"projects/{a}/datasets/evalset", "version": data_version.name}
        names["insight"] = op.data.insight("evalset/1").name
        names["mixture"] = op.data._stub.MaterializeMixture(  # no SDK method: the training path makes them
            data_service_pb2.MaterializeMixtureRequest(
                parent=f"projects/{a}",
                sources=[common_pb2.DatasetVersionRef(dataset_version=data_version.name, sampling_rate=1.0)],
            )
        ).name
        op.data.install_preset("math-grading")
        job = op.train.create(base_model=version.name, training_data={"math-grading-train": 0.2})
        op.train.cancel(job.name)
        names |= {"job": job.name, "checkpoint": f"{job.name}/checkpoints/1"}
        evaluation = op.evals.create([version.name], "evalset/1", metrics=["bleu4"])
        op.evals.cancel(evaluation.name)
        names |= {"evaluation": evaluation.name, "rating_task": f"{evaluation.name}/ratingTasks/t1"}
        op.serve.create("dep", version.name, replicas=0)
        names |= {
            "deployment": f"projects/{a}/deployments/dep",
            "call": f"projects/{a}/deployments/dep/calls/c1",
        }
        op.augment.create_teacher("tutor", deployment="dep")
        names["teacher"] = f"projects/{a}/teachers/tutor"
        task = op.annotate.create(data_version.name, kind="score")
        names |= {"task": task.name, "item": f"{task.name}/items/1"}
        run = op.augment.run("answer", data_version.name, into="answers", teacher="tutor")
        op.augment.cancel(run.name)
        names["run"] = run.name
        names |= {
            "upload": f"projects/{a}/datasets/evalset/uploads/{'0' * 32}",
            "upload_model": f"projects/{a}/models/base/uploads/{'0' * 32}",
            "derivation": f"projects/{a}/derivations/d1",
            "api_key": revoked.api_key.name,
        }
    time.sleep(1.2)  # the expired key is past its time
    yield {"a": a, "b": b, "b_key": b_key, "revoked": revoked.token, "expired": expired.token, "names": names}


def aimed_at(rpc: Rpc, names: dict[str, str], bend: Callable[[str], str] = lambda n: n) -> object:
    """A request of `rpc` whose name, parent and reference fields name A's resources."""
    request = rpc.new_request()
    name_kind, parent_kind = noun_targets(rpc)
    for message, field in string_fields(request):
        kind = {"name": name_kind, "parent": parent_kind}.get(field.name) or FIELD_RESOURCES.get(field.name)
        if kind is None:
            continue
        setattr(message, field.name, bend(names.get(kind, names["project"])))
    return request


def outcome(channel: grpc.Channel, rpc: Rpc, request: object, token: str | None) -> tuple[str, bytes]:
    try:
        response = call(channel, rpc, [request], token=token)
    except grpc.RpcError as error:
        return error.code().name, (error.details() or "").encode()
    return "OK", response.SerializeToString() if response is not None else b""


def test_every_rpc_refuses_another_projects_key_and_bad_keys(
    suite: LocalSuite, tenants: dict[str, object]
) -> None:
    a, names = str(tenants["a"]), dict(tenants["names"])  # type: ignore[arg-type]
    secrets_of_a = [n.encode() for n in names.values() if n.startswith("projects/")] + [a.encode()]
    counts: Counter[str] = Counter()
    failures: list[str] = []
    rpcs = all_rpcs()
    channels = {s: grpc.insecure_channel(suite.endpoints[s]) for s in {r.service for r in rpcs}}
    try:
        for rpc in rpcs:
            channel = channels[rpc.service]
            request = aimed_at(rpc, names)
            cases = [("b-key", request, tenants["b_key"], {"PERMISSION_DENIED", "NOT_FOUND"})]
            for bent in tricks(names["project"], a):
                cases.append(
                    (
                        "trick",
                        aimed_at(rpc, names, lambda n, bent=bent: n.replace(names["project"], bent, 1)),
                        tenants["b_key"],
                        {"PERMISSION_DENIED", "NOT_FOUND", "INVALID_ARGUMENT"},
                    )
                )
            for label, token in (
                ("no-key", None),
                ("wrong-key", "tf_0123456789ab_" + "x" * 43),
                ("revoked-key", tenants["revoked"]),
                ("expired-key", tenants["expired"]),
            ):
                cases.append((label, request, token, {"UNAUTHENTICATED"}))
            for label, req, token, allowed in cases:
                code, body = outcome(channel, rpc, req, token)  # type: ignore[arg-type]
                counts[f"{label}:{code}"] += 1
                leaked = [s for s in secrets_of_a if s in body] if code == "OK" else []
                # A call that names no project (presets, metrics, one's own projects) may answer,
                # as long as nothing of A is in the answer.
                untargeted = not any(True for _ in named_projects(req))  # type: ignore[arg-type]
                if code not in allowed and not (
                    code == "OK" and not leaked and (label == "trick" or untargeted)
                ):
                    failures.append(f"{rpc.path} [{label}] -> {code}: {body[:160]!r}")
                if leaked:
                    failures.append(f"{rpc.path} [{label}] leaked {leaked[:2]}")
    finally:
        for channel in channels.values():
            channel.close()
    total = sum(counts.values())
    print(
        f"tenancy matrix: {len(rpcs)} RPCs, {total} calls; by case and code: {dict(sorted(counts.items()))}"
    )
    assert not failures, f"{len(failures)} of {total} calls broke tenancy:\n" + "\n".join(failures[:40])
    assert len(rpcs) >= 117


def test_the_matrix_resources_are_still_there(
    suite: LocalSuite, tenants: dict[str, object], keys: ApiKeyStore
) -> None:
    """Nothing B's key sent changed A: A's admin still reads every resource it made."""
    with Client(suite.endpoints, api_key=suite.admin_key, project=str(tenants["a"])) as op:
        assert op.models.get("base").name.endswith("/base")
        assert op.data.get_version("evalset/1").row_count == 4
        assert op.augment.get_teacher("tutor").deployment.endswith("/dep")
        assert op.serve.get("dep").name.endswith("/dep")
