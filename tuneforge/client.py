"""The Python SDK: `tuneforge.Client`.

    from tuneforge import Client
    client = Client()                                   # local suite, or TUNEFORGE_* variables
    client.models.create("qwen-essay", display_name="Qwen essay grader")
    version = client.models.upload("qwen-essay", "out/final")
    client.models.set_alias("qwen-essay", "production", version.name)
    client.models.download("qwen-essay@production", "deploy/model")

Short names are expanded inside the client's project: `m` is `projects/{project}/models/m`,
`m/3` is version 3, `m@production` the version the alias points at.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tuneforge import telemetry
from tuneforge.api.augmentation import Annotate, Augment
from tuneforge.api.datasets import Datasets
from tuneforge.api.evaluations import Evaluations
from tuneforge.api.iam import Iam
from tuneforge.api.models import Models
from tuneforge.api.serving import Serving
from tuneforge.api.training import Training
from tuneforge.errors import TuneForgeError

_RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_SERVICES = (
    "tuneforge.registry.v1.RegistryService",
    "tuneforge.data.v1.DataService",
    "tuneforge.data.v1.AugmentationService",
    "tuneforge.train.v1.TrainService",
    "tuneforge.eval.v1.EvalService",
    "tuneforge.serve.v1.ServeService",
    "tuneforge.iam.v1.IamService",
)
SERVICES = ("registry", "data", "train", "eval", "serve", "iam")


def tuneforge_home() -> Path:
    return Path(os.environ.get("TUNEFORGE_HOME", Path.home() / ".tuneforge")).expanduser()


@dataclass(frozen=True)
class Connection:
    """Where the services are and who is calling."""

    endpoints: Mapping[str, str]
    api_key: str
    project: str

    @classmethod
    def resolve(
        cls,
        endpoint: str | None = None,
        api_key: str | None = None,
        project: str | None = None,
        profile: str | None = None,
    ) -> Connection:
        """Arguments first, then `TUNEFORGE_ENDPOINT` / `TUNEFORGE_<SERVICE>_ENDPOINT`,
        `TUNEFORGE_API_KEY`, `TUNEFORGE_PROJECT`, then the profile (`profile` or `TUNEFORGE_PROFILE`,
        from `$TUNEFORGE_HOME/profiles.toml`), then the local suite under `TUNEFORGE_HOME`."""
        home = tuneforge_home()
        local: dict[str, str] = {}
        chosen = load_profile(profile or os.environ.get("TUNEFORGE_PROFILE") or "", home)
        if chosen:
            local = {
                service: (chosen.get("endpoints") or {}).get(service) or chosen.get("endpoint", "")
                for service in (*SERVICES, "openai")
            }
        elif (home / "endpoints.json").exists():
            local = json.loads((home / "endpoints.json").read_text())
        given = dict(endpoint) if isinstance(endpoint, Mapping) else {}
        endpoint = None if isinstance(endpoint, Mapping) else endpoint
        endpoints = {}
        for service in SERVICES:
            endpoints[service] = (
                given.get(service)
                or endpoint
                or os.environ.get(f"TUNEFORGE_{service.upper()}_ENDPOINT")
                or os.environ.get("TUNEFORGE_ENDPOINT")
                or local.get(service, "")
            )
        # The OpenAI-compatible HTTP API of the serve service: `http(s)://host:port/v1`.
        endpoints["openai"] = (
            given.get("openai") or os.environ.get("TUNEFORGE_OPENAI_ENDPOINT") or local.get("openai", "")
        )
        # An explicit "" means "send no key"; None means "look it up".
        key = api_key if api_key is not None else os.environ.get("TUNEFORGE_API_KEY", "")
        if api_key is None and not key and chosen:
            key = chosen.get("api_key") or os.environ.get(chosen.get("api_key_env", ""), "")
        elif api_key is None and not key and (home / "admin.key").exists():
            key = (home / "admin.key").read_text().strip()
        return cls(
            endpoints,
            key,
            project or os.environ.get("TUNEFORGE_PROJECT") or (chosen or {}).get("project") or "default",
        )


def load_profile(name: str, home: Path) -> dict[str, Any] | None:
    """A named table of `$TUNEFORGE_HOME/profiles.toml`:

    [prod]
    endpoint = "tls://tuneforge.example.com:443"   # or [prod.endpoints] registry = "..." per service
    api_key_env = "TUNEFORGE_PROD_KEY"             # or api_key = "..." (keep the file private)
    project = "team-a"
    """
    if not name:
        return None
    import tomllib

    path = home / "profiles.toml"
    try:
        profiles = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"profile {name!r}: {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: {error}") from None
    if name not in profiles or not isinstance(profiles[name], dict):
        known = ", ".join(sorted(k for k, v in profiles.items() if isinstance(v, dict))) or "none"
        raise ValueError(f"profile {name!r} is not in {path} (profiles there: {known})")
    return profiles[name]


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression


class _Metadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the bearer API key, a request id and the current trace context to every call."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or [])
        if self.api_key:
            metadata.append(("authorization", f"Bearer {self.api_key}"))
        if not any(k == "x-request-id" for k, _ in metadata):
            metadata.append(("x-request-id", uuid.uuid4().hex))
        metadata.extend(telemetry.inject({}).items())
        return _CallDetails(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request_iterator)


def tls_credentials() -> grpc.ChannelCredentials:
    """TLS for `tls://` endpoints: the system's roots, or `TUNEFORGE_TLS_CA_FILE`; with
    `TUNEFORGE_TLS_CERT_FILE` and `TUNEFORGE_TLS_KEY_FILE`, a client certificate (mutual TLS)."""

    def read(variable: str) -> bytes | None:
        path = os.environ.get(variable, "")
        if not path:
            return None
        try:
            return Path(path).expanduser().read_bytes()
        except OSError as error:
            raise TuneForgeError("INVALID_ARGUMENT", f"{variable}: {error}") from None

    return grpc.ssl_channel_credentials(
        root_certificates=read("TUNEFORGE_TLS_CA_FILE"),
        private_key=read("TUNEFORGE_TLS_KEY_FILE"),
        certificate_chain=read("TUNEFORGE_TLS_CERT_FILE"),
    )


def _channel(address: str, api_key: str) -> grpc.Channel:
    """A channel to `host:port` (plaintext) or `tls://host:port` (TLS, verified: see `tls_credentials`).
    Replicas: `ipv4:host:port,host:port` or `dns:///name:port` (every address the name resolves to);
    calls go round-robin over them, and a call refused by one is retried on another."""
    if not address:
        raise TuneForgeError(
            "UNAVAILABLE",
            "no endpoint configured: start the local suite (`tuneforge up`) or set TUNEFORGE_ENDPOINT",
            reason="NO_ENDPOINT",
        )
    options = [
        ("grpc.enable_retries", 1),
        (
            "grpc.service_config",
            json.dumps(
                {
                    "loadBalancingConfig": [{"round_robin": {}}],
                    "methodConfig": [
                        {"name": [{"service": s} for s in _SERVICES], "retryPolicy": _RETRY_POLICY}
                    ],
                }
            ),
        ),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ]
    if address.startswith("tls://"):
        channel = grpc.secure_channel(address.removeprefix("tls://"), tls_credentials(), options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    return grpc.intercept_channel(channel, _Metadata(api_key))


class Client:
    """A connection to TuneForge. Settings come from the arguments, `TUNEFORGE_*`, a profile in
    `$TUNEFORGE_HOME/profiles.toml` (`profile=` or `TUNEFORGE_PROFILE`), or the local suite."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        api_key: str | None = None,
        project: str | None = None,
        profile: str | None = None,
    ) -> None:
        self.connection = Connection.resolve(endpoint, api_key, project, profile)
        self.project = self.connection.project
        self._channels: dict[str, grpc.Channel] = {}
        self.models = Models(lambda: self.channel("registry"), self.project)
        self.data = Datasets(lambda: self.channel("data"), self.project)
        # Augmentation and annotation are served by the data service.
        self.augment = Augment(lambda: self.channel("data"), self.project)
        self.annotate = Annotate(lambda: self.channel("data"), self.project)
        self.train = Training(lambda: self.channel("train"), self.project)
        self.evals = Evaluations(lambda: self.channel("eval"), self.project)
        self.iam = Iam(lambda: self.channel("iam"), self.project)
        self.serve = Serving(
            lambda: self.channel("serve"), self.project, self.connection.endpoints.get("openai", "")
        )

    def channel(self, service: str) -> grpc.Channel:
        """The channel to `service` (`registry`, `data`, `train`, `eval`), shared by address."""
        address = self.connection.endpoints.get(service, "")
        if address not in self._channels:
            self._channels[address] = _channel(address, self.connection.api_key)
        return self._channels[address]

    def close(self) -> None:
        for channel in self._channels.values():
            with contextlib.suppress(Exception):
                channel.close()
        self._channels.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
