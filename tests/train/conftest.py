from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge import Client


@pytest.fixture
def base_model(client: Client, tiny_model_dir: Path) -> str:
    """The tiny model registered in this test's project; returns the version's name."""
    client.models.create("tiny-base")
    return client.models.upload("tiny-base", tiny_model_dir).name


@pytest.fixture
def math_data(client: Client) -> None:
    client.data.install_preset("math-grading")
