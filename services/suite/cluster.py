"""The production topology on one machine: PostgreSQL (given), a NATS JetStream cluster whose
streams keep a copy on every node, the S3 server, several replicas of every service (clients and
peers balance over them round-robin) and several training workers.

It is the local suite with its single processes multiplied: the same settings, keys and process
management, so a topology test exercises exactly what a deployment runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from minio import Minio

from services.suite.processes import (
    ManagedProcess,
    choose_seaweed_ports,
    find_binary,
    free_port,
    http_ok,
    seaweed_process,
)
from services.suite.suite import (
    ENDPOINTS_FILE,
    LOOPBACK,
    STATE_FILE,
    LocalSuite,
    SuiteState,
    _source_root,
    grpc_serving,
    take_lock,
)


class ClusterSuite(LocalSuite):
    """`replicas` of each service, a NATS cluster of `nats_nodes`, `workers` training workers, on
    the PostgreSQL database `database_url`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str,
        replicas: int = 2,
        nats_nodes: int = 3,
        workers: int = 2,
        **options: object,
    ) -> None:
        super().__init__(data_dir, database_url=database_url, workers=workers, console=False, **options)  # type: ignore[arg-type]
        self.replicas = replicas
        self.nats_nodes = nats_nodes
        self.replica_ports: dict[str, list[int]] = {}
        self.http_ports: list[int] = []
        self.nats_ports: list[dict[str, int]] = []

    # -- where things are ------------------------------------------------------------------------

    @property
    def nats_urls(self) -> list[str]:
        return [f"nats://{LOOPBACK}:{p['client']}" for p in self.nats_ports]

    @property
    def bus_url(self) -> str:
        assert self.state is not None
        password = self.state.nats_services_password
        return ",".join(f"nats://services:{password}@{LOOPBACK}:{p['client']}" for p in self.nats_ports)

    @property
    def endpoints(self) -> dict[str, str]:
        assert self.state is not None, "the suite is not started"
        out = {"nats": ",".join(self.nats_urls), "s3": f"{LOOPBACK}:{self.state.seaweed_ports['s3']}"}
        for name, ports in self.replica_ports.items():
            out[name] = "ipv4:" + ",".join(f"{LOOPBACK}:{port}" for port in ports)
        if self.http_ports:
            out["openai"] = f"http://{LOOPBACK}:{self.http_ports[0]}/v1"
        return out

    def replica_address(self, name: str, index: int) -> str:
        return f"{LOOPBACK}:{self.replica_ports[name][index]}"

    def service_env(self, name: str) -> dict[str, str]:
        env = super().service_env(name)
        env["TUNEFORGE_NATS_URL"] = ",".join(self.nats_urls)
        env["TUNEFORGE_NATS_STREAM_REPLICAS"] = str(min(3, self.nats_nodes))
        for other in self.replica_ports:
            if other != name:
                env[f"TUNEFORGE_{other.upper()}_ENDPOINT"] = self.endpoints[other]
        if "serve" in self.services:
            env["TUNEFORGE_SERVE_OPENAI_ENDPOINT"] = self.endpoints["openai"]
        return env

    # -- starting ------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._lock is None:
            self._lock = take_lock(self.data_dir)
        self.state = state = SuiteState.load_or_create(self.data_dir / STATE_FILE)
        used: set[int] = set()

        def port() -> int:
            chosen = free_port(used)
            used.add(chosen)
            return chosen

        self.nats_ports = [
            {"client": port(), "cluster": port(), "monitor": port()} for _ in range(self.nats_nodes)
        ]
        state.seaweed_ports = choose_seaweed_ports()
        used.update(state.seaweed_ports.values())
        self.replica_ports = {name: [port() for _ in range(self.replicas)] for name in self.services}
        if "serve" in self.services:
            self.http_ports = [port() for _ in range(self.replicas)]
        # The parent's environment names one port per service: the first replica's.
        state.service_ports = {name: ports[0] for name, ports in self.replica_ports.items()}
        if self.http_ports:
            state.service_ports["serve-http"] = self.http_ports[0]
        state.save(self.data_dir / STATE_FILE)
        try:
            for index in range(self.nats_nodes):
                self.start_nats(index, timeout)
            for index in range(self.nats_nodes):
                self._wait_jetstream(index, timeout)
            s3 = seaweed_process(self.data_dir, state.seaweed_ports, state.s3_access_key, state.s3_secret_key)
            self.processes["s3"] = s3
            s3.start()
            client = Minio(self.endpoints["s3"], state.s3_access_key, state.s3_secret_key, secure=False)
            s3.wait_ready(lambda: client.list_buckets() is not None, timeout)
            self._ensure_keys()
            for name in self.services:
                for index in range(self.replicas):
                    self.start_replica(name, index, timeout)
            for index in range(self.workers):
                self.start_worker(index, timeout)
            for kind, count in (
                ("eval", self.eval_workers),
                ("data", self.data_workers),
                ("serve", self.serve_workers),
                ("registry", self.registry_workers),
            ):
                for index in range(count):
                    self.start_worker(index, timeout, kind=kind)
            (self.data_dir / ENDPOINTS_FILE).write_text(json.dumps(self.endpoints, indent=2))
        except BaseException:
            self.stop()
            raise

    def start_nats(self, index: int, timeout: float = 60.0) -> ManagedProcess:
        """Node `index` of the cluster (again, after a kill: it rejoins with its stored streams)."""
        assert self.state is not None
        ports = self.nats_ports[index]
        folder = self.data_dir / f"nats-{index}"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        routes = ", ".join(f"nats-route://{LOOPBACK}:{p['cluster']}" for p in self.nats_ports)
        config = folder / "server.conf"
        config.touch(mode=0o600)
        config.write_text(
            f"server_name: n{index}\n"
            f"listen: {LOOPBACK}:{ports['client']}\n"
            f"http: {LOOPBACK}:{ports['monitor']}\n"
            f"jetstream {{ store_dir: {json.dumps(str(folder / 'js'))} }}\n"
            f"cluster {{ name: tuneforge, listen: {LOOPBACK}:{ports['cluster']}, routes: [{routes}] }}\n"
            "authorization { users = [\n"
            f"  {{user: services, password: {json.dumps(self.state.nats_services_password)}}}\n"
            f"  {{user: workers, password: {json.dumps(self.state.nats_workers_password)}}}\n"
            "] }\n"
        )
        process = ManagedProcess(
            name=f"nats-{index}",
            argv=[find_binary("nats-server"), "-c", str(config)],
            log_path=self.data_dir / "logs" / f"nats-{index}.log",
        )
        self.processes[process.name] = process
        process.start()
        return process

    def _wait_jetstream(self, index: int, timeout: float) -> None:
        url = f"http://{LOOPBACK}:{self.nats_ports[index]['monitor']}/healthz?js-enabled-only=true"
        self.processes[f"nats-{index}"].wait_ready(lambda: http_ok(url), timeout)

    def start_replica(self, name: str, index: int, timeout: float = 60.0) -> ManagedProcess:
        """Replica `index` of the service `name` (again, after a kill)."""
        process_name = f"{name}-{index}"
        port_file = self.data_dir / "run" / f"{process_name}.port"
        port_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        port_file.unlink(missing_ok=True)
        env = {
            **self.service_env(name),
            "PYTHONPATH": _source_root(),
            "TUNEFORGE_LISTEN": self.replica_address(name, index),
            "TUNEFORGE_PORT_FILE": str(port_file),
            "TUNEFORGE_METRICS_PORT_FILE": str(self.data_dir / "run" / f"{process_name}.metrics-port"),
        }
        if name == "serve":
            env["TUNEFORGE_SERVE_HTTP_LISTEN"] = f"{LOOPBACK}:{self.http_ports[index]}"
            env["TUNEFORGE_SERVE_HTTP_PORT_FILE"] = str(self.data_dir / "run" / f"serve-http-{index}.port")
        process = ManagedProcess(
            name=process_name,
            argv=[sys.executable, "-m", f"services.{name}"],
            log_path=self.data_dir / "logs" / f"{process_name}.log",
            env=env,
        )
        self.processes[process_name] = process
        process.start()
        address = self.replica_address(name, index)
        process.wait_ready(lambda: port_file.exists() and grpc_serving(address), timeout)
        return process
