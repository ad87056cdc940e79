"""TLS for every gRPC server and channel of a process, from its settings.

- `TUNEFORGE_TLS_CERT_FILE` and `TUNEFORGE_TLS_KEY_FILE`: the process serves TLS with this
  certificate (and, calling other services, presents it as its client certificate).
- `TUNEFORGE_TLS_CA_FILE`: the certificates the process trusts when it calls other services (its
  peers, serving processes); with it, every such call is TLS.
- `TUNEFORGE_TLS_CLIENT_CA_FILE`: mutual TLS — the server requires a client certificate signed by
  this CA from every caller (services, workers, and SDK users, who set `TUNEFORGE_TLS_CERT_FILE` and
  `TUNEFORGE_TLS_KEY_FILE` too).

One configuration per process, set by `open_runtime` from the settings (as the settings themselves).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class TlsConfig:
    cert: bytes | None = None
    key: bytes | None = None
    ca: bytes | None = None
    client_ca: bytes | None = None

    @classmethod
    def from_files(
        cls, cert: Path | None, key: Path | None, ca: Path | None, client_ca: Path | None
    ) -> TlsConfig:
        if bool(cert) != bool(key):
            raise ValueError("TUNEFORGE_TLS_CERT_FILE and TUNEFORGE_TLS_KEY_FILE go together")
        read = lambda p: p.read_bytes() if p else None  # noqa: E731
        return cls(read(cert), read(key), read(ca), read(client_ca))

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if self.cert is None or self.key is None:
            return None
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        if self.ca is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


_configured = TlsConfig()


def configure(config: TlsConfig) -> None:
    global _configured
    _configured = config


def current() -> TlsConfig:
    return _configured


def aio_channel(address: str, options: list[tuple[str, object]] | None = None) -> grpc.aio.Channel:
    """A channel to another part of the suite: TLS when this process trusts a CA, else plaintext."""
    credentials = _configured.channel_credentials()
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)
