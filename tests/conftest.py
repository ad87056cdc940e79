"""Shared fixtures: a real local suite (NATS, SeaweedFS S3, the services) started once per test
session on free loopback ports, and clients for it. Each test gets its own project, so tests do
not see each other's resources.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.kit.auth import ApiKeyStore
from services.kit.db import Database
from services.suite.suite import LocalSuite
from tuneforge import Client


def pytest_configure(config: pytest.Config) -> None:
    # Clients fall back to the local suite under TUNEFORGE_HOME: never the user's own.
    os.environ["TUNEFORGE_HOME"] = tempfile.mkdtemp(prefix="tuneforge-home-")
    for variable in ("TUNEFORGE_ENDPOINT", "TUNEFORGE_API_KEY", "TUNEFORGE_PROJECT"):
        os.environ.pop(variable, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("TUNEFORGE_TEST_POSTGRES_URL"):
        return
    skip = pytest.mark.skip(reason="set TUNEFORGE_TEST_POSTGRES_URL to run PostgreSQL tests")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuite]:
    local = LocalSuite(
        tmp_path_factory.mktemp("suite"),
        extra_env={
            "TUNEFORGE_REGISTRY_SWEEP_INTERVAL_SECONDS": "1",
            "TUNEFORGE_DATA_MAX_LINE_BYTES": "65536",
            "TUNEFORGE_DATA_MAX_UPLOAD_BYTES": str(8 * 1024 * 1024),
            # Deployments of every test share the suite's serving process.
            "TUNEFORGE_SERVE_WORKER_CAPACITY": "16",
            # The training worker may run a job as 2 processes (gloo DDP): the distributed tests.
            "TUNEFORGE_TRAIN_CPU_DEVICES": "2",
            "TUNEFORGE_TRAIN_HEARTBEAT_SECONDS": "1",
            # A killed data worker's task goes to its successor within seconds (augmentation resume).
            "TUNEFORGE_DATA_ACK_WAIT_SECONDS": "8",
        },
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def keys(suite: LocalSuite) -> Iterator[ApiKeyStore]:
    store = ApiKeyStore(Database(suite.service_env("registry")["TUNEFORGE_AUTH_DATABASE_URL"], schema="auth"))
    yield store
    store.db.dispose()


@pytest.fixture
def project() -> str:
    return "p-" + uuid.uuid4().hex[:10]


@pytest.fixture
def client(suite: LocalSuite, project: str) -> Iterator[Client]:
    """A client with the suite's admin key, working in this test's own project."""
    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as c:
        yield c


def write_model_folder(
    folder: Path, *, tensor_bytes: int = 4096, seed: int = 0, extra: dict[str, bytes] | None = None
) -> Path:
    """A small Hugging Face-shaped folder: config.json and safetensors weights."""
    import json

    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file(
        # (n, 8): the hidden size config.json declares, as the registry checks
        {"weight": rng.standard_normal((max(1, tensor_bytes // 32), 8)).astype(np.float32)},
        str(folder / "model.safetensors"),
    )
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    for name, data in (extra or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def running(module: str) -> list[int]:
    """Pids of the processes on this host started as `python -m <module>`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if f"{module}\x00".encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database on the server TUNEFORGE_TEST_POSTGRES_URL names; dropped afterwards."""
    url = os.environ.get("TUNEFORGE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set TUNEFORGE_TEST_POSTGRES_URL to run PostgreSQL tests")
    name = "tf_test_" + uuid.uuid4().hex[:10]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Database tests run twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Llama with a tokenizer trained on the project's own corpora, built once."""
    from services.data.presets import project_texts
    from services.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", project_texts())


@pytest.fixture
def base_model(client: Client, tiny_model_dir: Path) -> str:
    """The tiny model registered in this test's project; returns the version's name."""
    client.models.create("tiny-base")
    return client.models.upload("tiny-base", tiny_model_dir).name


@pytest.fixture
def math_data(client: Client) -> None:
    client.data.install_preset("math-grading")


@pytest.fixture
def real_job(client: Client, base_model: str, math_data: None) -> Callable[[str], str]:
    """Makes a training job that exists (queued, then cancelled at once), for lineages that name
    one: the registry checks that a lineage's job and dataset versions exist in the project."""

    def make(job_id: str) -> str:
        job = client.train.create(
            base_model=base_model,
            training_data={"math-grading-train": 0.2},
            job_id=job_id,
            hyperparameters={"epochs": 1},
        )
        client.train.cancel(job.name)
        return job.name

    return make
