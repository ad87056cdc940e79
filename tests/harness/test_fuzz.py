"""Request fuzzing in the suite: at least 1,000 random requests over every RPC, with a project
admin's key. Bar: 0 INTERNAL or UNKNOWN, every service still SERVING, nothing of the fuzzed project
half-made (no version stuck PROCESSING, no model version without its files)."""

from __future__ import annotations

import os
import time
import uuid

from services.suite.suite import LocalSuite, grpc_serving
from tests.harness.fuzz import fuzz
from tests.harness.rpcs import all_rpcs
from tuneforge import Client
from tuneforge.data.v1 import dataset_pb2

# Ten per RPC in the suite; more (and other seeds) for a soak: TUNEFORGE_FUZZ_REQUESTS, _SEED.
REQUESTS = int(os.environ.get("TUNEFORGE_FUZZ_REQUESTS", "1170"))
SEED = int(os.environ.get("TUNEFORGE_FUZZ_SEED", "20261207"))


def test_a_thousand_hostile_requests_get_no_internal_error(suite: LocalSuite) -> None:
    project = "fuzz-" + uuid.uuid4().hex[:6]
    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as op:
        op.iam.create_project(project, quota={"max_requests_per_second": 1e6})
        token = op.iam.create_key("admin", display_name="fuzzer").token
        op.data.create("d", "sft")
        op.models.create("m")
    names = [f"projects/{project}/datasets/d", f"projects/{project}/models/m"]
    result = fuzz(suite.endpoints, token, project, REQUESTS, seed=SEED, names=names)
    print(
        f"fuzzing: {result.sent} requests over {len(all_rpcs())} RPCs; by code: {dict(result.codes.most_common())}"
    )
    assert result.sent >= 1000 and len(result.by_rpc) == len(all_rpcs())
    assert not result.bad, "\n".join(result.bad[:30])
    for service in ("registry", "data", "train", "eval", "serve", "iam"):
        assert grpc_serving(suite.endpoints[service]), f"{service} is down after the fuzzing"
    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as op:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            versions = [v for d in op.data.list() for v in op.data.list_versions(d.name.rsplit("/", 1)[1])]
            if all(v.state != dataset_pb2.DATASET_VERSION_STATE_PROCESSING for v in versions):
                break
            time.sleep(1)
        assert all(v.state != dataset_pb2.DATASET_VERSION_STATE_PROCESSING for v in versions), (
            "a version is stuck"
        )
        for model in op.models.list():
            for version in op.models.list_versions(model.name.rsplit("/", 1)[1]):
                assert version.files, f"{version.name} has no files"
