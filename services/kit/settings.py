"""Process settings from `TUNEFORGE_*` environment variables, validated at start-up."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KitSettings(BaseSettings):
    """What every service process needs. Each field is read from `TUNEFORGE_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", extra="ignore", frozen=True)

    listen: str = Field("127.0.0.1:50051", description="host:port the gRPC server binds (port 0: any free)")
    port_file: Path | None = Field(None, description="write the bound port here once serving")
    database_url: str = Field(
        description="SQLAlchemy URL of this service's database (sqlite:/// or postgresql+psycopg://)"
    )
    auth_database_url: str = Field(
        description="SQLAlchemy URL of the API-key database shared by all services"
    )
    nats_url: str = Field(
        "nats://127.0.0.1:4222",
        description="NATS with JetStream (a cluster: its nodes' URLs, comma-separated)",
    )
    nats_user: str = Field("", description="NATS user this process connects as (services or workers)")
    nats_password: SecretStr = Field(SecretStr(""), description="that user's password")
    nats_stream_replicas: int = Field(1, ge=1, le=5, description="copies of each stream a NATS cluster keeps")
    s3_endpoint: str = Field("127.0.0.1:9000", description="S3 endpoint host:port")
    s3_public_endpoint: str | None = Field(None, description="host:port clients use for presigned URLs")
    s3_access_key: SecretStr
    s3_secret_key: SecretStr
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    s3_bucket: str = "tuneforge"
    secret_key: SecretStr = Field(description="signs page tokens; the same on every replica")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024 * 1024)
    tls_cert_file: Path | None = Field(None, description="serve TLS with this certificate (PEM)")
    tls_key_file: Path | None = Field(None, description="the certificate's private key (PEM)")
    tls_ca_file: Path | None = Field(None, description="trust this CA calling other services (TLS to peers)")
    tls_client_ca_file: Path | None = Field(None, description="require client certificates signed by this CA")
    metrics_listen: str = Field(
        "", description="serve Prometheus /metrics on host:port (empty: off; port 0: any)"
    )
    metrics_port_file: Path | None = Field(None, description="write the metrics port here once serving")
    metrics_refresh_seconds: float = Field(
        10.0, gt=0, description="how often the queue, job and worker gauges are read from NATS and SQL"
    )
    trace_file: Path | None = Field(None, description="append finished trace spans here as JSON lines")
    otlp_endpoint: str = Field("", description="export trace spans by OTLP/gRPC to this collector")
    rate_limit_per_key: float = Field(
        100.0, ge=0, description="requests per second a project key may make to this replica (0: no limit)"
    )

    @field_validator("listen", "metrics_listen")
    @classmethod
    def _host_port(cls, value: str, info: Any) -> str:
        if not value and info.field_name == "metrics_listen":
            return value
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port, for example 127.0.0.1:50051")
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Read settings or exit with one line per bad variable, naming the variable."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            lines.append(f"  {prefix}{field.upper()}: {error['msg']}")
        print("invalid settings:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
