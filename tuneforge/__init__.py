"""TuneForge: fine-tune language models on your own task, self-hosted.

`tuneforge.Client` is the Python SDK; `tuneforge` on the command line is the CLI. The generated
API stubs live in `tuneforge.<service>.v1`; importing them does not load the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneforge.client import Client, Connection
    from tuneforge.errors import TuneForgeError

__all__ = ["Client", "Connection", "TuneForgeError"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "Connection"):
        from tuneforge import client

        return getattr(client, name)
    if name == "TuneForgeError":
        from tuneforge.errors import TuneForgeError

        return TuneForgeError
    raise AttributeError(f"module 'tuneforge' has no attribute {name!r}")
