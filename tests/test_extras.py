"""Each service installs alone: its extra, into a fresh virtualenv (what its image does), starts that
service against the running suite's NATS, S3 and keys, and reports SERVING, without the libraries of
any other service (no torch outside the workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.suite.suite import LocalSuite, grpc_serving

ROOT = Path(__file__).resolve().parents[1]
# extra -> (the service it runs, libraries it must not bring)
EXTRAS = {
    "registry": ("registry", ("torch", "pyarrow", "transformers")),
    "data": ("data", ("torch", "transformers", "sacrebleu")),
    "train": ("train", ("torch", "pyarrow", "tokenizers", "datasketch")),
    "eval": ("eval", ("torch", "sacrebleu", "pyarrow", "jieba")),
    "serve": ("serve", ("torch", "transformers", "tokenizers")),
    "iam": ("iam", ("torch", "pyarrow", "tokenizers", "datasketch")),
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built once as a wheel, as an image would install it."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
        check=True,
        timeout=600,
    )
    return next(out.glob("tuneforge-*.whl"))


def _venv(folder: Path, requirement: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    python = folder / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"), requirement],
        check=True,
        timeout=900,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    return python


@pytest.fixture
def started(suite: LocalSuite, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.parametrize("extra", list(EXTRAS))
def test_each_extra_alone_installs_and_serves(
    suite: LocalSuite, wheel: Path, tmp_path: Path, started: list[subprocess.Popen[bytes]], extra: str
) -> None:
    service, absent = EXTRAS[extra]
    python = _venv(tmp_path / "venv", f"tuneforge[{extra}] @ {wheel.as_uri()}")
    missing = subprocess.run(
        [
            str(python),
            "-c",
            f"import importlib.util as u; print([m for m in {list(absent)!r} if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert missing.stdout.strip() == "[]", f"{extra} brings {missing.stdout.strip()}"
    port_file = tmp_path / "port"
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        **suite.service_env(service),
        "TUNEFORGE_LISTEN": "127.0.0.1:0",
        "TUNEFORGE_PORT_FILE": str(port_file),
        "TUNEFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
        "TUNEFORGE_LOG_FORMAT": "text",
        # The serve service's HTTP API on a port of its own (the suite's serve holds its port).
        "TUNEFORGE_SERVE_HTTP_LISTEN": "127.0.0.1:0",
        "TUNEFORGE_SERVE_HTTP_PORT_FILE": str(tmp_path / "http.port"),
    }
    log = (tmp_path / "service.log").open("wb")
    # From its own site-packages: the working directory holds no source tree.
    started.append(
        subprocess.Popen(
            [str(python), "-m", f"services.{service}"], env=env, cwd=tmp_path, stdout=log, stderr=log
        )
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if port_file.exists() and grpc_serving(f"127.0.0.1:{port_file.read_text()}"):
            return
        if started[-1].poll() is not None:
            break
        time.sleep(0.5)
    pytest.fail(f"{service} did not serve:\n{(tmp_path / 'service.log').read_text()[-3000:]}")


def test_the_console_extra_alone_installs_and_forwards_to_the_services(
    suite: LocalSuite, wheel: Path, tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    """The console image's install: no torch, no service libraries; it answers and forwards."""
    python = _venv(tmp_path / "venv", f"tuneforge[console] @ {wheel.as_uri()}")
    missing = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print([m for m in ('torch', 'pyarrow', 'fastapi') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert missing.stdout.strip() == "[]", f"console brings {missing.stdout.strip()}"
    port_file = tmp_path / "port"
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "TUNEFORGE_CONSOLE_LISTEN": "127.0.0.1:0",
        "TUNEFORGE_CONSOLE_PORT_FILE": str(port_file),
        "TUNEFORGE_REGISTRY_ENDPOINT": suite.endpoints["registry"],
    }
    log = (tmp_path / "console.log").open("wb")
    started.append(
        subprocess.Popen(
            [str(python), "-m", "services.console"], env=env, cwd=tmp_path, stdout=log, stderr=log
        )
    )
    deadline = time.monotonic() + 60
    while not port_file.exists() and time.monotonic() < deadline and started[-1].poll() is None:
        time.sleep(0.3)
    assert port_file.exists(), (tmp_path / "console.log").read_text()[-3000:]
    # A gRPC-Web call with no key reaches the registry, which refuses it (UNAUTHENTICATED = 16).
    request = urllib.request.Request(
        f"http://127.0.0.1:{port_file.read_text()}/tuneforge.registry.v1.RegistryService/ListModels",
        data=b"\x00\x00\x00\x00\x00",
        headers={"content-type": "application/grpc-web+proto"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    assert body[0] == 0x80 and b"grpc-status: 16" in body, body
