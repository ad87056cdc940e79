"""TuneForge: fine-tune language models on your own task, self-hosted.

`tuneforge.Client` is the Python SDK; `tuneforge` on the command line is the CLI.
"""

from tuneforge.client import Client, Connection
from tuneforge.errors import TuneForgeError

__all__ = ["Client", "Connection", "TuneForgeError"]
