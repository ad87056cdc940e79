"""Connection settings from a profile, the environment and arguments, in that order of precedence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.client import Connection

PROFILES = """
[prod]
endpoint = "tls://tuneforge.example.com:443"
api_key_env = "PROD_KEY"
project = "team-a"

[split]
api_key = "k-split"
[split.endpoints]
registry = "10.0.0.1:50051"
train = "10.0.0.2:50051"
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("TUNEFORGE_ENDPOINT", "TUNEFORGE_API_KEY", "TUNEFORGE_PROJECT", "TUNEFORGE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path))
    (tmp_path / "profiles.toml").write_text(PROFILES)
    return tmp_path


def test_a_profile_gives_endpoints_key_and_project(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROD_KEY", "k-prod")
    c = Connection.resolve(profile="prod")
    assert set(c.endpoints.values()) == {"tls://tuneforge.example.com:443"}
    assert (c.api_key, c.project) == ("k-prod", "team-a")
    split = Connection.resolve(profile="split")
    assert split.endpoints["registry"] == "10.0.0.1:50051" and split.endpoints["train"] == "10.0.0.2:50051"
    assert split.api_key == "k-split" and split.project == "default"


def test_environment_and_arguments_override_the_profile(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEFORGE_PROFILE", "prod")
    monkeypatch.setenv("TUNEFORGE_PROJECT", "from-env")
    monkeypatch.setenv("TUNEFORGE_TRAIN_ENDPOINT", "127.0.0.1:9")
    c = Connection.resolve(api_key="k-arg")
    assert c.project == "from-env" and c.api_key == "k-arg"
    assert c.endpoints["train"] == "127.0.0.1:9" and c.endpoints["data"] == "tls://tuneforge.example.com:443"
    assert Connection.resolve(project="p-arg").project == "p-arg"


def test_unknown_or_broken_profiles_are_named(home: Path) -> None:
    with pytest.raises(
        ValueError, match=r"profile 'staging' is not in .*profiles.toml \(profiles there: prod, split\)"
    ):
        Connection.resolve(profile="staging")
    (home / "profiles.toml").write_text("[prod\n")
    with pytest.raises(ValueError, match=r"profiles\.toml"):
        Connection.resolve(profile="prod")
    result = subprocess.run(
        [sys.executable, "-m", "tuneforge", "--profile", "prod", "models", "list"],
        capture_output=True,
        text=True,
        env={"TUNEFORGE_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("W1129")]
    assert result.returncode == 2 and len(lines) == 1 and "--profile" in lines[0], result.stderr
