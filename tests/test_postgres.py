"""The services on PostgreSQL: the same APIs over a suite whose services use a PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.suite.suite import LocalSuite
from tests.conftest import write_model_folder
from tests.registry.test_registry_api import expect_error
from tuneforge import Client


@pytest.mark.postgres
def test_registry_and_data_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "m", tensor_bytes=1024 * 1024)
    with (
        LocalSuite(tmp_path / "suite", database_url=postgres_url) as suite,
        Client(suite.endpoints["registry"], api_key=suite.admin_key, project="pg") as client,
    ):
        for i in range(7):
            client.models.create(f"m-{i}", tags={"family": "llama" if i % 2 else "qwen"})
        assert [m.name[-3:] for m in client.models.list(page_size=2)] == [f"m-{i}" for i in range(7)]
        assert len(list(client.models.list(page_size=2, filter='tags.family = "llama"'))) == 3
        assert (
            client.models.create("idem", request_id="r1").uid
            == client.models.create("idem", request_id="r1").uid
        )

        base = client.models.upload("m-0", folder)
        tuned = client.models.upload("m-1", folder, presigned=True, lineage={"base_model": base.name})
        child = client.models.upload(
            "m-1", folder, lineage={"base_model": base.name, "parent_version": tuned.name}
        )
        client.models.set_alias("m-1", "production", child.name)
        assert client.models.get_version("m-1@production").lineage.parent_version == tuned.name
        expect_error("FAILED_PRECONDITION", client.models.delete_version, "m-1/1")
        expect_error("FAILED_PRECONDITION", client.models.delete, "m-0", force=True)
        client.models.download("m-1@production", tmp_path / "out")
        assert (tmp_path / "out" / "model.safetensors").read_bytes() == (
            folder / "model.safetensors"
        ).read_bytes()
        client.models.delete_alias("m-1", "production")
        client.models.delete("m-1", force=True)
        client.models.delete("m-0", force=True)
        assert len(list(client.models.list())) == 6
