"""Child processes of the local suite: NATS with JetStream, a SeaweedFS S3 server, and services.

Every server binds to 127.0.0.1 only. Each process logs to a file under the suite's data folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.kit.children import PARENT_VARIABLE, exec_argv

LOOPBACK = "127.0.0.1"


def free_port(avoid: set[int] | None = None, *, below: int = 65536) -> int:
    """A TCP port free on loopback right now (not in `avoid`, below `below`)."""
    while True:
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if port < below and port not in (avoid or set()):
            return port


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether `url` answers 200 (a readiness check)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def find_binary(name: str) -> str:
    """A console script installed beside this interpreter (the venv), else one on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed; install TuneForge with the `local` extra")
    return found


@dataclass
class ManagedProcess:
    """A child process with its own log file; stopped with SIGTERM, then SIGKILL after a grace."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log = os.fdopen(fd, "ab")
        self.process = subprocess.Popen(
            exec_argv(self.argv),  # dies with the suite, even one killed with SIGKILL
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env, PARENT_VARIABLE: str(os.getpid())},
            cwd=self.cwd,
            start_new_session=True,  # Ctrl-C reaches the suite, which stops children in order
            umask=0o077,  # databases (API keys among them), objects and logs: the user's alone
        )
        log.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name} exited during start-up; see {self.log_path}:\n{self.tail()}")
            try:
                if check():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.name} was not ready after {timeout:.0f} s; see {self.log_path}:\n{self.tail()}"
        )

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def nats_process(data_dir: Path, port: int, users: dict[str, str]) -> ManagedProcess:
    """NATS with JetStream on loopback; only the given users (name -> password) may connect."""
    config = data_dir / "nats" / "auth.conf"
    config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    entries = "\n".join(f"    {{user: {json.dumps(u)}, password: {json.dumps(p)}}}" for u, p in users.items())
    config.touch(mode=0o600)
    config.write_text(f"authorization {{\n  users = [\n{entries}\n  ]\n}}\n")
    return ManagedProcess(
        name="nats",
        argv=[
            find_binary("nats-server"),
            "-c",
            str(config),
            "-a",
            LOOPBACK,
            "-p",
            str(port),
            "-js",
            "-sd",
            str(data_dir / "nats"),
        ],
        log_path=data_dir / "logs" / "nats.log",
    )


SEAWEED_PORTS = (
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "s3",
    "s3_grpc",
    "admin",
    "admin_grpc",
)


def seaweed_process(
    data_dir: Path, ports: dict[str, int], access_key: str, secret_key: str
) -> ManagedProcess:
    """`weed mini` with every port on loopback, telemetry and the admin UI off."""
    root = data_dir / "s3"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    (root / "logs").mkdir(mode=0o700, exist_ok=True)
    return ManagedProcess(
        name="s3",
        argv=[
            find_binary("weed"),
            f"-logdir={root / 'logs'}",
            "mini",
            f"-dir={root}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master_grpc']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            f"-admin.port={ports['admin']}",
            f"-admin.port.grpc={ports['admin_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={root / 'filer.sock'}",
            f"-s3.localSocket={root / 's3.sock'}",
        ],
        log_path=data_dir / "logs" / "s3.log",
        env={"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key, "TMPDIR": str(root)},
        cwd=root,
    )


def choose_seaweed_ports(previous: dict[str, int] | None = None) -> dict[str, int]:
    """Reuse the previous ports where still free; the admin worker dials admin + 10000, keep it free too."""
    ports: dict[str, int] = {}
    used: set[int] = set()
    for name in SEAWEED_PORTS:
        old = (previous or {}).get(name)
        if old and old not in used and port_is_free(old) and (name != "admin" or port_is_free(old + 10000)):
            ports[name] = old
        elif name == "admin":
            while True:
                port = free_port(used, below=55535)
                if port_is_free(port + 10000) and port + 10000 not in used:
                    break
            ports[name] = port
        else:
            ports[name] = free_port(used)
        used.add(ports[name])
        if name == "admin":
            used.add(ports[name] + 10000)
    return ports
