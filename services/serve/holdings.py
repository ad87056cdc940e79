"""What a serving process holds: the models it has loaded (one per base model version, adapters
inside it) and, per deployment, the version it serves now and the one still draining after a switch.

A switch is atomic: a request takes the active version when it starts and keeps it to its end; the
version it replaced is unloaded once its last request has finished (a rolling update loses nothing).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.kit.peers import Peers

log = logging.getLogger("tuneforge.serve-worker")


def adapter_name(version: str) -> str:
    """A name PEFT accepts for an adapter (module keys may not hold dots or slashes)."""
    return "a" + hashlib.sha256(version.encode()).hexdigest()[:16]


def folder_name(version: str) -> str:
    return "m" + hashlib.sha256(version.encode()).hexdigest()[:24]


@dataclass
class Served:
    """A model version ready to answer a deployment's requests."""

    version: str
    base: str  # the loaded model: the base version (for an adapter) or the version itself
    adapter: str  # the adapter's name inside the loaded model, or the engine's base marker
    engine: str = "transformers"
    in_flight: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return self.engine, self.base


@dataclass
class Holding:
    """One deployment on this process."""

    uid: str
    active: Served | None = None
    loading: str = ""  # the version being loaded
    failed: str = ""  # a version that could not be loaded
    waiting: int = 0
    max_concurrent: int = 8


class Models:
    """Loaded models by engine and base version, shared by the deployments that use them
    (reference counted)."""

    def __init__(self, peers: Peers, work_dir: Path, device: str, engines: dict[str, Any]) -> None:
        self.peers = peers
        self.work_dir = work_dir
        self.device = device
        # Engine modules by name: each has LoadedModel, Batcher, Request, ContextTooLong, BASE_ADAPTER.
        self.engines = engines
        self.loaded: dict[tuple[str, str], Any] = {}
        self.batchers: dict[tuple[str, str], Any] = {}
        # (engine, base) -> how many deployments use each adapter name (or the base itself) in it
        self.users: dict[tuple[str, str], Counter[str]] = {}
        self.lock = asyncio.Lock()

    async def _files(self, version: str) -> Path:
        """The version's files on local disk, each verified against its sha256 when downloaded."""
        folder = self.work_dir / folder_name(version)
        if not (folder / ".complete").exists():
            partial = folder.with_suffix(".partial")
            await asyncio.to_thread(shutil.rmtree, partial, True)
            await self.peers.download_model(version, partial)
            (partial / ".complete").write_text(version)
            await asyncio.to_thread(shutil.rmtree, folder, True)
            partial.rename(folder)
        return folder

    async def acquire(self, version: str, base: str, *, engine: str, max_batch: int, window: float) -> Served:
        """Load `version` (an adapter on `base`, or a full model when `base` is "") in `engine`."""
        module = self.engines[engine]
        key = (engine, base or version)
        async with self.lock:
            if key not in self.loaded:
                folder = await self._files(key[1])
                loaded = await asyncio.to_thread(module.LoadedModel, folder, self.device)
                self.loaded[key] = loaded
                self.batchers[key] = module.Batcher(
                    loaded, max_batch=max_batch, window=window, wait_when_idle=False
                )
                self.users[key] = Counter()
                log.info(
                    "model loaded",
                    extra={"model_version": key[1], "engine": engine, "bytes": loaded.resident_bytes()},
                )
            name = module.BASE_ADAPTER
            if base:
                name = adapter_name(version)
                if not self.users[key][name]:
                    folder = await self._files(version)
                    await asyncio.to_thread(self.loaded[key].add_adapter, name, folder)
            self.users[key][name] += 1
            return Served(version=version, base=key[1], adapter=name, engine=engine)

    async def release(self, served: Served) -> None:
        """Unload what no deployment on this process uses any more."""
        async with self.lock:
            users = self.users.get(served.key)
            if users is None:
                return
            users[served.adapter] -= 1
            loaded = self.loaded[served.key]
            if users[served.adapter] <= 0:
                del users[served.adapter]
                if served.adapter != self.module(served).BASE_ADAPTER:
                    await asyncio.to_thread(loaded.remove_adapter, served.adapter)
            if not users:
                self.batchers.pop(served.key).close()
                del self.loaded[served.key], self.users[served.key]
                log.info("model unloaded", extra={"model_version": served.base, "engine": served.engine})

    def module(self, served: Served) -> Any:
        return self.engines[served.engine]

    def batcher(self, served: Served) -> Any:
        return self.batchers[served.key]

    def model(self, served: Served) -> Any:
        return self.loaded[served.key]

    def resident_bytes(self) -> int:
        return sum(m.resident_bytes() for m in self.loaded.values())
