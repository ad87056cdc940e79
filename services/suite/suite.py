"""The embedded local suite: NATS, an S3 server and the TuneForge services on loopback ports,
with SQLite under one data folder. A restart on the same folder keeps every model, key and event.

    suite = LocalSuite(Path("~/.tuneforge").expanduser())
    suite.start()       # prints nothing; see suite.endpoints and suite.admin_key
    ...
    suite.stop()

One suite runs on a data folder at a time: `start()` takes an exclusive lock on `suite.lock` (the
kernel drops it when the process dies, however it dies) and raises `SuiteRunning`, naming the
running suite's pid, when another holds it; nothing of the running suite is touched. Every child
receives SIGTERM when the suite's process dies (see services.kit.children); the kernel ties that to
the thread that started the child, so start (and restart parts of) a suite from a thread that lives
as long as the suite, such as the main thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from minio import Minio

from services.kit.auth import ALL_PROJECTS, ApiKeyStore
from services.kit.db import Database
from services.suite.certs import SuiteCerts, make_certs
from services.suite.processes import (
    LOOPBACK,
    ManagedProcess,
    choose_seaweed_ports,
    free_port,
    http_ok,
    nats_process,
    port_is_free,
    seaweed_process,
)

SERVICES = ("registry", "data", "train", "eval", "serve", "iam")
STATE_FILE = "suite.json"
ENDPOINTS_FILE = "endpoints.json"
ADMIN_KEY_FILE = "admin.key"
WORKER_KEY_FILE = "worker.key"
LOCK_FILE = "suite.lock"


class SuiteRunning(RuntimeError):
    """Another suite holds the data folder's lock."""

    def __init__(self, data_dir: Path, pid: int) -> None:
        self.data_dir, self.pid = data_dir, pid
        super().__init__(
            f"a TuneForge suite is already running on {data_dir} (pid {pid or 'unknown'}): "
            f"use it (`tuneforge status`), stop it (kill {pid or '<pid>'}), or pass another --data-dir"
        )


def take_lock(data_dir: Path) -> int:
    """The open, exclusively locked lock file of `data_dir` (it holds this process's pid)."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise SuiteRunning(data_dir, int(text) if text.isdigit() else 0) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def running_endpoints(data_dir: Path, timeout: float = 120.0) -> dict[str, str]:
    """The endpoints of the suite running on `data_dir`, waiting while it is still starting."""
    path = data_dir / ENDPOINTS_FILE
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the suite on {data_dir} wrote no {ENDPOINTS_FILE} in {timeout:.0f} s")
        try:
            fd = take_lock(data_dir)
        except SuiteRunning:
            time.sleep(0.5)
            continue
        os.close(fd)
        raise RuntimeError(f"the suite on {data_dir} stopped before it was ready")
    return json.loads(path.read_text())


@dataclass
class SuiteState:
    """What must survive a restart: credentials and the ports last used."""

    s3_access_key: str
    s3_secret_key: str
    secret_key: str
    # NATS users: the services, and the workers (each its own password; anonymous is refused).
    nats_services_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    nats_workers_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    nats_port: int = 0
    seaweed_ports: dict[str, int] = field(default_factory=dict)
    service_ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load_or_create(cls, path: Path) -> SuiteState:
        if path.exists():
            return cls(**json.loads(path.read_text()))
        return cls(
            s3_access_key="tf" + secrets.token_hex(8),
            s3_secret_key=secrets.token_urlsafe(24),
            secret_key=secrets.token_urlsafe(32),
        )

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)


def _reuse_or_new(previous: int, used: set[int]) -> int:
    return previous if previous and previous not in used and port_is_free(previous) else free_port(used)


def _tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


def grpc_serving(
    address: str, service: str = "", timeout: float = 1.0, credentials: grpc.ChannelCredentials | None = None
) -> bool:
    """True when the gRPC health service at `address` (`host:port`, or `tls://host:port` with
    `credentials`) reports SERVING."""
    target = address.removeprefix("tls://")
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    with channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


class LocalSuite:
    """Starts and stops the whole platform on one machine."""

    def __init__(
        self,
        data_dir: Path,
        *,
        services: tuple[str, ...] = SERVICES,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        workers: int = 1,
        local_model_dirs: tuple[Path, ...] = (),
        tls: str = "",
        console: bool | None = None,
    ) -> None:
        """`tls`: "" (plaintext on loopback), "tls" (every gRPC server and the OpenAI API serve TLS
        with the suite's own CA) or "mtls" (gRPC servers also require a client certificate)."""
        assert tls in ("", "tls", "mtls")
        self.tls = tls
        self.data_dir = data_dir.resolve()
        self.services = services
        self.database_url = database_url
        self.extra_env = dict(extra_env or {})
        self.workers = workers if "train" in services else 0
        self.eval_workers = 1 if "eval" in services else 0
        self.data_workers = 1 if "data" in services else 0
        self.serve_workers = 1 if "serve" in services else 0
        self.registry_workers = 1 if "registry" in services else 0
        self.local_model_dirs = local_model_dirs
        # The browser console (and its gRPC-Web gateway) comes with a suite of every service.
        self.console = set(SERVICES) <= set(services) if console is None else console
        self.processes: dict[str, ManagedProcess] = {}
        self.state: SuiteState | None = None
        self._lock: int | None = None

    # -- layout --------------------------------------------------------------------------------

    def _database_url(self, schema: str) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'db' / f'{schema}.db'}"

    @property
    def admin_key(self) -> str:
        return (self.data_dir / ADMIN_KEY_FILE).read_text().strip()

    @property
    def bus_url(self) -> str:
        """NATS with the services' credentials in the URL (the endpoint alone is refused)."""
        assert self.state is not None, "the suite is not started"
        return f"nats://services:{self.state.nats_services_password}@{LOOPBACK}:{self.state.nats_port}"

    @property
    def endpoints(self) -> dict[str, str]:
        assert self.state is not None, "the suite is not started"
        out = {
            "nats": f"nats://{LOOPBACK}:{self.state.nats_port}",
            "s3": f"{LOOPBACK}:{self.state.seaweed_ports['s3']}",
        }
        scheme = "tls://" if self.tls else ""
        out.update(
            {
                name: f"{scheme}{LOOPBACK}:{port}"
                for name, port in self.state.service_ports.items()
                if name in self.services
            }
        )
        if "serve" in self.services:
            http = "https" if self.tls else "http"
            out["openai"] = f"{http}://{LOOPBACK}:{self.state.service_ports['serve-http']}/v1"
        if self.console and "console" in self.state.service_ports:
            out["console"] = f"http://{LOOPBACK}:{self.state.service_ports['console']}"
        return out

    def metrics_url(self, process: str) -> str:
        """Where a process of the suite (a service, `worker-0`, `eval-worker-0`...) serves /metrics."""
        port = (self.data_dir / "run" / f"{process}.metrics-port").read_text().strip()
        return f"http://{LOOPBACK}:{port}/metrics"

    @property
    def certs(self) -> SuiteCerts:
        """The suite's CA and certificates (TLS suites)."""
        return make_certs(self.data_dir / "tls")

    def tls_env(self) -> dict[str, str]:
        """What a client of a TLS suite sets (`TUNEFORGE_TLS_*`), and every process of the suite."""
        if not self.tls:
            return {}
        certs = self.certs
        env = {"TUNEFORGE_TLS_CA_FILE": str(certs.ca)}
        if self.tls == "mtls":
            env |= {
                "TUNEFORGE_TLS_CERT_FILE": str(certs.client_cert),
                "TUNEFORGE_TLS_KEY_FILE": str(certs.client_key),
            }
        return env

    def _health_credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls:
            return None
        certs = self.certs
        mutual = self.tls == "mtls"
        return grpc.ssl_channel_credentials(
            certs.ca.read_bytes(),
            certs.client_key.read_bytes() if mutual else None,
            certs.client_cert.read_bytes() if mutual else None,
        )

    def service_env(self, name: str) -> dict[str, str]:
        """The environment a service process of this suite runs with."""
        assert self.state is not None
        return {
            "TUNEFORGE_LISTEN": f"{LOOPBACK}:{self.state.service_ports[name]}",
            "TUNEFORGE_PORT_FILE": str(self.data_dir / "run" / f"{name}.port"),
            # Every process serves Prometheus /metrics on a port of its own (`metrics_url`).
            "TUNEFORGE_METRICS_LISTEN": f"{LOOPBACK}:0",
            "TUNEFORGE_METRICS_PORT_FILE": str(self.data_dir / "run" / f"{name}.metrics-port"),
            "TUNEFORGE_DATABASE_URL": self._database_url(name),
            "TUNEFORGE_AUTH_DATABASE_URL": self._database_url("auth"),
            "TUNEFORGE_NATS_URL": self.endpoints["nats"],
            "TUNEFORGE_NATS_USER": "services",
            "TUNEFORGE_NATS_PASSWORD": self.state.nats_services_password,
            "TUNEFORGE_S3_ENDPOINT": self.endpoints["s3"],
            "TUNEFORGE_S3_ACCESS_KEY": self.state.s3_access_key,
            "TUNEFORGE_S3_SECRET_KEY": self.state.s3_secret_key,
            "TUNEFORGE_SECRET_KEY": self.state.secret_key,
            "TUNEFORGE_LOG_FORMAT": "json",
            **{
                f"TUNEFORGE_{other.upper()}_ENDPOINT": f"{LOOPBACK}:{port}"
                for other, port in self.state.service_ports.items()
                if other != name and other in self.services
            },
            # Data workers reach deployment teachers through the serve service's OpenAI API.
            **(
                {"TUNEFORGE_SERVE_OPENAI_ENDPOINT": self.endpoints["openai"]}
                if "serve" in self.services
                else {}
            ),
            **(
                {
                    "TUNEFORGE_SERVE_HTTP_LISTEN": f"{LOOPBACK}:{self.state.service_ports['serve-http']}",
                    "TUNEFORGE_SERVE_HTTP_PORT_FILE": str(self.data_dir / "run" / "serve-http.port"),
                }
                if name == "serve"
                else {}
            ),
            "TUNEFORGE_SHUTDOWN_GRACE_SECONDS": "3",
            **self._process_tls_env(),
            "TUNEFORGE_TRAIN_LOCAL_MODEL_DIRS": ":".join(str(d) for d in self.local_model_dirs),
            # The eval service starts evaluations itself after training, with the workers' key.
            "TUNEFORGE_EVAL_SERVICE_API_KEY": (self.data_dir / WORKER_KEY_FILE).read_text().strip()
            if (self.data_dir / WORKER_KEY_FILE).exists()
            else "",
            **self.extra_env,
        }

    def _process_tls_env(self) -> dict[str, str]:
        """A TLS suite's processes serve with the suite's certificate and trust its CA."""
        if not self.tls:
            return {}
        certs = self.certs
        env = {
            "TUNEFORGE_TLS_CERT_FILE": str(certs.cert),
            "TUNEFORGE_TLS_KEY_FILE": str(certs.key),
            "TUNEFORGE_TLS_CA_FILE": str(certs.ca),
        }
        if self.tls == "mtls":
            env["TUNEFORGE_TLS_CLIENT_CA_FILE"] = str(certs.ca)
        return env

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        """Start every component and wait until each is healthy; on failure stop what started."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # one made before (or by mktemp) may be wider
        if self._lock is None:
            self._lock = take_lock(self.data_dir)  # SuiteRunning when another suite has the folder
        state_path = self.data_dir / STATE_FILE
        self.state = state = SuiteState.load_or_create(state_path)
        used: set[int] = set()
        state.nats_port = _reuse_or_new(state.nats_port, used)
        used.add(state.nats_port)
        state.seaweed_ports = choose_seaweed_ports(state.seaweed_ports)
        used.update(state.seaweed_ports.values())
        extra_ports = ["serve-http"] if "serve" in self.services else []
        extra_ports += ["console"] if self.console else []
        for name in [*self.services, *extra_ports]:
            state.service_ports[name] = _reuse_or_new(state.service_ports.get(name, 0), used)
            used.add(state.service_ports[name])
        state.save(state_path)
        try:
            nats = nats_process(
                self.data_dir,
                state.nats_port,
                {"services": state.nats_services_password, "workers": state.nats_workers_password},
            )
            self.processes["nats"] = nats
            nats.start()
            nats.wait_ready(lambda: _tcp_open(state.nats_port), timeout)

            s3 = seaweed_process(self.data_dir, state.seaweed_ports, state.s3_access_key, state.s3_secret_key)
            self.processes["s3"] = s3
            s3.start()
            client = Minio(
                self.endpoints["s3"],
                state.s3_access_key,
                state.s3_secret_key,
                secure=False,
                region="us-east-1",
            )
            s3.wait_ready(lambda: client.list_buckets() is not None, timeout)

            self._ensure_keys()
            for name in self.services:
                self.start_service(name, timeout)
            for index in range(self.workers):
                self.start_worker(index, timeout)
            for index in range(self.eval_workers):
                self.start_worker(index, timeout, kind="eval")
            for index in range(self.data_workers):
                self.start_worker(index, timeout, kind="data")
            for index in range(self.serve_workers):
                self.start_worker(index, timeout, kind="serve")
            for index in range(self.registry_workers):
                self.start_worker(index, timeout, kind="registry")
            if self.console:
                self.start_console(timeout)
            endpoints = self.data_dir / ENDPOINTS_FILE
            endpoints.touch(mode=0o600)
            endpoints.chmod(0o600)
            endpoints.write_text(json.dumps(self.endpoints, indent=2))
        except BaseException:
            self.stop()
            raise

    def start_service(self, name: str, timeout: float = 60.0) -> ManagedProcess:
        port_file = self.data_dir / "run" / f"{name}.port"
        port_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        port_file.unlink(missing_ok=True)
        process = ManagedProcess(
            name=name,
            argv=[sys.executable, "-m", f"services.{name}"],
            log_path=self.data_dir / "logs" / f"{name}.log",
            env={**self.service_env(name), "PYTHONPATH": _source_root()},
        )
        self.processes[name] = process
        process.start()
        address = self.endpoints[name]
        credentials = self._health_credentials()
        process.wait_ready(
            lambda: port_file.exists() and grpc_serving(address, credentials=credentials), timeout
        )
        return process

    def start_worker(
        self, index: int, timeout: float = 60.0, kind: str = "train", own: dict[str, str] | None = None
    ) -> ManagedProcess:
        """A training (or evaluation) worker; it pulls jobs from the queue its service fills. `own`:
        settings of this worker alone (`TUNEFORGE_TRAIN_CPU_DEVICES`, ...)."""
        name = f"worker-{index}" if kind == "train" else f"{kind}-worker-{index}"
        env = self.service_env(kind)
        env.pop("TUNEFORGE_PORT_FILE")
        log_path = self.data_dir / "logs" / f"{name}.log"
        start_offset = log_path.stat().st_size if log_path.exists() else 0
        process = ManagedProcess(
            name=name,
            argv=[sys.executable, "-m", f"services.{kind}.worker"],
            log_path=log_path,
            env={
                **env,
                "PYTHONPATH": _source_root(),
                "TUNEFORGE_WORKER_API_KEY": (self.data_dir / WORKER_KEY_FILE).read_text().strip(),
                "TUNEFORGE_NATS_USER": "workers",
                "TUNEFORGE_NATS_PASSWORD": self.state.nats_workers_password,
                "TUNEFORGE_WORKER_NAME": name,
                "TUNEFORGE_METRICS_PORT_FILE": str(self.data_dir / "run" / f"{name}.metrics-port"),
                "TUNEFORGE_TRAIN_WORK_DIR": str(self.data_dir / "work" / name),
                "TUNEFORGE_EVAL_WORK_DIR": str(self.data_dir / "work" / name),
                "TUNEFORGE_DATA_WORK_DIR": str(self.data_dir / "work" / name),
                "TUNEFORGE_SERVE_WORK_DIR": str(self.data_dir / "work" / name),
                "TUNEFORGE_REGISTRY_WORK_DIR": str(self.data_dir / "work" / name),
                **self.extra_env,
                **(own or {}),
            },
        )
        self.processes[name] = process
        process.start()
        process.wait_ready(
            lambda: "worker ready" in log_path.read_bytes()[start_offset:].decode(errors="replace"), timeout
        )
        return process

    def start_console(self, timeout: float = 60.0) -> ManagedProcess:
        """The console process: the built app and the gRPC-Web gateway to the services."""
        assert self.state is not None
        port_file = self.data_dir / "run" / "console.port"
        port_file.unlink(missing_ok=True)
        env = {
            "PYTHONPATH": _source_root(),
            "TUNEFORGE_CONSOLE_LISTEN": f"{LOOPBACK}:{self.state.service_ports['console']}",
            "TUNEFORGE_CONSOLE_PORT_FILE": str(port_file),
            "TUNEFORGE_LOG_FORMAT": "json",
            **{
                f"TUNEFORGE_{name.upper()}_ENDPOINT": f"{LOOPBACK}:{self.state.service_ports[name]}"
                for name in self.services
            },
            **({"TUNEFORGE_TLS_CA_FILE": str(self.certs.ca)} if self.tls else {}),
            **self.extra_env,
        }
        process = ManagedProcess(
            name="console",
            argv=[sys.executable, "-m", "services.console"],
            log_path=self.data_dir / "logs" / "console.log",
            env=env,
        )
        self.processes["console"] = process
        process.start()
        url = f"http://{LOOPBACK}:{self.state.service_ports['console']}/healthz"
        process.wait_ready(lambda: port_file.exists() and http_ok(url), timeout)
        return process

    def _ensure_keys(self) -> None:
        keys = ApiKeyStore(Database(self._database_url("auth"), schema="auth"))
        try:
            keys.migrate()
            for file, note in (
                (ADMIN_KEY_FILE, "local suite administrator"),
                (WORKER_KEY_FILE, "local training workers"),
            ):
                key_file = self.data_dir / file
                if not key_file.exists():
                    _, token = keys.create(ALL_PROJECTS, "admin", note)
                    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "w") as f:
                        f.write(token + "\n")
        finally:
            keys.db.dispose()

    def stop(self) -> None:
        """Stop services first, then storage and messaging, so nothing loses its backend mid-write."""
        workers = [n for n in self.processes if "worker-" in n]
        infrastructure = ["s3", *(n for n in self.processes if n == "nats" or n.startswith("nats-"))]
        order = workers + [n for n in self.processes if n not in (*infrastructure, *workers)] + infrastructure
        for name in order:
            process = self.processes.get(name)
            if process is not None:
                process.stop(grace=10.0 if name not in ("s3",) else 5.0)
        self.processes.clear()
        if self._lock is not None:
            (self.data_dir / ENDPOINTS_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = None

    def __enter__(self) -> LocalSuite:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _source_root() -> str:
    """The folder holding the `services` package, so children import the same code."""
    return str(Path(__file__).resolve().parents[2])
