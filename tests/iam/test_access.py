"""Access a team can run, over the real suite: projects made by operators, keys with roles and
expiry made by a project's admins, revocation within a second everywhere, the audit log of every
write, per-key rates and project quotas."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from services.suite.suite import LocalSuite
from tests.conftest import write_model_folder
from tests.registry.test_registry_api import expect_error
from tuneforge import Client


@pytest.fixture
def team(suite: LocalSuite) -> tuple[str, str]:
    """A project made by an operator, and a key of its admin."""
    project = "team-" + uuid.uuid4().hex[:8]
    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as operator:
        operator.iam.create_project(project, display_name="Team", quota={"max_running_jobs": 3})
        admin = operator.iam.create_key("admin", display_name="lead")
    return project, admin.token


def http(url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body else None)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_projects_are_made_by_operators_and_run_by_their_admins(
    suite: LocalSuite, team: tuple[str, str]
) -> None:
    project, admin_token = team
    with Client(suite.endpoints, api_key=admin_token, project=project) as admin:
        assert admin.iam.get_project().display_name == "Team"
        assert [p.name for p in admin.iam.projects()] == [f"projects/{project}"], "its own project only"
        assert expect_error("PERMISSION_DENIED", admin.iam.create_project, "mine").reason == "OPERATOR_ONLY"
        error = expect_error("PERMISSION_DENIED", admin.iam.update_project, quota={"max_running_jobs": 99})
        assert error.reason == "OPERATOR_ONLY"
        assert admin.iam.update_project(display_name="Team A").display_name == "Team A"
        expect_error("PERMISSION_DENIED", admin.iam.get_project, "default")
        admin.data.create("notes", "text")
    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as operator:
        assert f"projects/{project}" in {p.name for p in operator.iam.projects()}
        error = expect_error("FAILED_PRECONDITION", operator.iam.delete_project, project)
        assert error.reason == "PROJECT_NOT_EMPTY" and "1 datasets" in error.message
        operator.data.delete("notes")
        operator.iam.delete_project(project)
        expect_error("NOT_FOUND", operator.iam.get_project, project)
    with Client(suite.endpoints, api_key=admin_token, project=project) as gone:
        deadline = time.monotonic() + 3  # every replica drops revoked keys within a second
        while time.monotonic() < deadline:
            try:
                list(gone.data.list())
            except Exception as error:
                assert getattr(error, "reason", "") == "REVOKED_API_KEY", error
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the deleted project's key still works")
    with Client(suite.endpoints, api_key=suite.admin_key, project="x") as operator:
        error = expect_error("FAILED_PRECONDITION", operator.iam.create_key, "member", project="never-made")
        assert error.reason == "PROJECT_NOT_FOUND"


def test_roles_expiry_last_use_and_revocation_everywhere(suite: LocalSuite, team: tuple[str, str]) -> None:
    project, admin_token = team
    with Client(suite.endpoints, api_key=admin_token, project=project) as admin:
        viewer = admin.iam.create_key("viewer", display_name="dashboards")
        member = admin.iam.create_key("member", display_name="ci")
        brief = admin.iam.create_key("member", expires_in_days=3 / 86400)
        error = expect_error("INVALID_ARGUMENT", admin.iam.create_key, "member", expires_in_days=-1)
        assert error.violations[0].field == "api_key.expire_time"
        expect_error("PERMISSION_DENIED", admin.iam.create_key, "member", project="someone-else")
        expect_error("PERMISSION_DENIED", admin.iam.create_key, "admin", project="-")
        admin.data.create("shared", "sft")
    with Client(suite.endpoints, api_key=viewer.token, project=project) as v:
        assert [d.name.rsplit("/", 1)[1] for d in v.data.list()] == ["shared"]
        error = expect_error("PERMISSION_DENIED", v.data.create, "mine", "sft")
        assert error.reason == "ROLE_FORBIDDEN" and "member" in error.message
        expect_error("PERMISSION_DENIED", v.models.create, "m")
        expect_error("PERMISSION_DENIED", lambda: list(v.iam.keys()))
        status, body = http(suite.endpoints["openai"] + "/models", viewer.token)
        assert status == 200 and body["object"] == "list"
        status, body = http(
            suite.endpoints["openai"] + "/chat/completions",
            viewer.token,
            {"model": "any", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert status == 403 and body["error"]["type"] == "permission_error", body
    with Client(suite.endpoints, api_key=member.token, project=project) as m:
        m.data.create("mine", "sft")
        assert expect_error("PERMISSION_DENIED", m.data.delete, "mine").reason == "ROLE_FORBIDDEN"
        assert expect_error("PERMISSION_DENIED", m.iam.create_key, "viewer").reason == "ROLE_FORBIDDEN"
    with Client(suite.endpoints, api_key=brief.token, project=project) as b:
        assert list(b.data.list())
        time.sleep(3.2)
        assert expect_error("UNAUTHENTICATED", lambda: list(b.data.list())).reason == "EXPIRED_API_KEY"
    with Client(suite.endpoints, api_key=admin_token, project=project) as admin:
        admin.data.delete("mine")
        keys = {k.display_name: k for k in admin.iam.keys(project)}
        assert keys["ci"].last_used_time.seconds and keys["ci"].active and not keys[""].active
        assert keys["dashboards"].role == 1 and not any(k.HasField("revoke_time") for k in keys.values())
        admin.iam.revoke_key(viewer.api_key.name)
        revoked_at = time.monotonic()
    calls = {
        "data": lambda c: list(c.data.list()),
        "registry": lambda c: list(c.models.list()),
        "train": lambda c: list(c.train.list()),
        "eval": lambda c: list(c.evals.list()),
        "serve": lambda c: list(c.serve.list()),
        "iam": lambda c: c.iam.get_project(),
    }
    refused: dict[str, float] = {}
    with Client(suite.endpoints, api_key=viewer.token, project=project) as v:
        while len(refused) < len(calls) and time.monotonic() - revoked_at < 10:
            for service, call in calls.items():
                if service not in refused:
                    try:
                        call(v)
                    except Exception as error:
                        assert getattr(error, "reason", "") == "REVOKED_API_KEY", error
                        refused[service] = time.monotonic() - revoked_at
            time.sleep(0.05)
    print(f"revoked over gRPC, refused after: {', '.join(f'{k} {v:.2f} s' for k, v in refused.items())}")
    assert set(refused) == set(calls) and max(refused.values()) < 2.5


def test_every_write_is_audited_and_reads_are_not(
    suite: LocalSuite, team: tuple[str, str], tmp_path: Path
) -> None:
    project, admin_token = team
    with Client(suite.endpoints, api_key=admin_token, project=project) as admin:
        member = admin.iam.create_key("member", display_name="writer")
        viewer = admin.iam.create_key("viewer")
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"text": "hello"}) + "\n")
    with Client(suite.endpoints, api_key=member.token, project=project) as m:
        m.data.create("audited", "text")
        expect_error("ALREADY_EXISTS", m.data.create, "audited", "text")
        m.data.upload("audited", path)
        list(m.data.list())
        m.data.get("audited")
    with Client(suite.endpoints, api_key=viewer.token, project=project) as v:
        expect_error("PERMISSION_DENIED", lambda: list(v.iam.audit_log()))
    with Client(suite.endpoints, api_key=admin_token, project=project) as admin:
        entries = list(admin.iam.audit_log())
        mine = [e for e in entries if e.api_key == member.api_key.name]
        assert [(e.method.rsplit("/", 1)[1], e.status) for e in reversed(mine)] == [
            ("CreateDataset", "OK"),
            ("CreateDataset", "ALREADY_EXISTS"),
            ("UploadDatasetVersion", "OK"),
        ], "writes, failed ones too; no reads"
        assert all(e.project == f"projects/{project}" and e.request_id for e in mine)
        assert (
            mine[-1].resource == f"projects/{project}"
            and mine[0].resource == f"projects/{project}/datasets/audited"
        )
        keys_made = [e for e in entries if e.method.endswith("/CreateApiKey")]
        # The operator made the admin's key; the admin made two.
        assert [e.api_key.startswith("projects/-/") for e in reversed(keys_made)] == [True, False, False]
        assert all(e.role == 3 for e in keys_made)
        only = list(admin.iam.audit_log(method="/tuneforge.data.v1.DataService/UploadDatasetVersion"))
        assert [e.api_key for e in only] == [member.api_key.name]


def test_rates_and_quotas_answer_resource_exhausted(
    suite: LocalSuite, team: tuple[str, str], tmp_path: Path, tiny_model_dir: Path
) -> None:
    project, admin_token = team
    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as operator:
        operator.iam.update_project(
            quota={"max_requests_per_second": 2, "max_storage_bytes": 40_000, "max_running_jobs": 1}
        )
    with Client(suite.endpoints, api_key=admin_token, project=project) as admin:
        limited = None
        for i in range(20):
            try:
                list(admin.data.list())
            except Exception as error:
                limited = (i, error)
                break
        assert limited is not None and limited[0] >= 3, "a burst of twice the rate passes"
        assert getattr(limited[1], "code", "") == "RESOURCE_EXHAUSTED" and limited[1].reason == "RATE_LIMITED"
        time.sleep(1.5)
        admin.models.create("m")
        time.sleep(0.6)
        admin.models.upload("m", write_model_folder(tmp_path / "a", tensor_bytes=24_000))
        time.sleep(0.6)
        error = expect_error(
            "RESOURCE_EXHAUSTED",
            admin.models.upload,
            "m",
            write_model_folder(tmp_path / "b", tensor_bytes=24_000),
        )
        assert error.reason == "STORAGE_QUOTA" and "40000" in error.message
        time.sleep(0.6)
        assert [v.name.rsplit("/", 1)[1] for v in admin.models.list_versions("m")] == ["1"], (
            "nothing half-stored"
        )
    jobs_project = project + "-jobs"
    with Client(suite.endpoints, api_key=suite.admin_key, project=jobs_project) as operator:
        operator.iam.create_project(jobs_project, quota={"max_running_jobs": 1})
        operator.models.create("tiny")
        base = operator.models.upload("tiny", tiny_model_dir).name
        operator.data.install_preset("math-grading")
        first = operator.train.create(base_model=base, training_data={"math-grading-train": 0.2})
        error = expect_error(
            "RESOURCE_EXHAUSTED",
            operator.train.create,
            base_model=base,
            training_data={"math-grading-train": 0.2},
        )
        assert error.reason == "RUNNING_JOBS_QUOTA"
        operator.train.cancel(first.name)
        operator.train.wait(first.name, timeout=120)  # a running job ends once its worker stops it
        second = operator.train.create(base_model=base, training_data={"math-grading-train": 0.2})
        operator.train.cancel(second.name)
