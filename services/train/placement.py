"""Which worker may run which job: what a worker has (`Capabilities`, sent in its heartbeat),
whether a job's `Resources` fit it, and why a queued job waits.

A worker takes a job from the queue only when the job fits it; one that does not fit goes back to
the queue for another worker (`Worker.handle`). The control plane explains a queued job from the
heartbeats it keeps (`waiting_reason`), so a job no live worker can run says so instead of failing
or landing on the wrong node.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.train.spec import Resources

LIVE_HEARTBEATS = 3  # a worker is live while its last heartbeat is younger than 3 intervals


@dataclass
class Capabilities:
    """What one worker can give one job."""

    accelerator_kind: str  # cuda or cpu
    accelerators: int
    accelerator_memory_bytes: int
    host_memory_bytes: int
    backends: list[str]
    device_names: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    ray_nodes: int = 0
    ray_accelerators_per_node: int = 0
    ray_kind: str = ""

    def facts(self) -> dict[str, Any]:
        """What the heartbeat row keeps in its JSON column."""
        data = asdict(self)
        for key in ("accelerator_kind", "accelerators", "accelerator_memory_bytes", "host_memory_bytes"):
            data.pop(key)
        return data

    @classmethod
    def of_row(cls, row: Any) -> Capabilities:
        facts = dict(row.facts or {})
        return cls(
            accelerator_kind=row.accelerator_kind,
            accelerators=row.accelerators,
            accelerator_memory_bytes=row.accelerator_memory_bytes,
            host_memory_bytes=row.host_memory_bytes,
            backends=list(facts.pop("backends", [])),
            **{k: v for k, v in facts.items() if k in cls.__dataclass_fields__},
        )

    def describe(self) -> str:
        """`2 cuda (NVIDIA H200, 139 GiB)`, `1 cpu`."""
        memory = f", {self.accelerator_memory_bytes / 2**30:.0f} GiB" if self.accelerator_memory_bytes else ""
        names = (
            f" ({self.device_names[0]}{memory})"
            if self.device_names and self.accelerator_kind == "cuda"
            else ""
        )
        ray = (
            f", ray: {self.ray_nodes} nodes × {self.ray_accelerators_per_node} {self.ray_kind}"
            if "ray" in self.backends
            else ""
        )
        return f"{self.accelerators} {self.accelerator_kind}{names}{ray}"


def host_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def detect(cpu_devices: int, ray: dict[str, int] | None = None) -> Capabilities:
    """This machine's devices: every visible CUDA device, else `cpu_devices` CPU processes (what the
    operator allows one job). `ray`: the Ray cluster's {"nodes", "accelerators_per_node"} when the
    worker has one."""
    import peft
    import torch
    import transformers
    import trl

    versions = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
    }
    if torch.cuda.is_available() and torch.cuda.device_count():
        properties = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
        kind, count = "cuda", len(properties)
        memory = min(p.total_memory for p in properties)
        names = [p.name for p in properties]
    else:
        kind, count, memory = "cpu", max(1, cpu_devices), host_memory_bytes()
        names = [platform.processor() or platform.machine()]
    backends = ["process"] + (["torchrun"] if count > 1 else []) + (["ray"] if ray else [])
    caps = Capabilities(kind, count, memory, host_memory_bytes(), backends, names, versions)
    if ray:
        caps.ray_nodes = ray["nodes"]
        caps.ray_accelerators_per_node = ray["accelerators_per_node"]
        caps.ray_kind = ray["kind"]
        caps.versions["ray"] = ray.get("version", "")
    return caps


def misfit(resources: Resources, caps: Capabilities) -> str:
    """Why `caps` cannot run a job needing `resources` (empty: it can)."""
    if resources.nodes > 1:
        if "ray" not in caps.backends:
            return "has no Ray cluster (several nodes run on Ray)"
        if resources.accelerator_kind and resources.accelerator_kind != caps.ray_kind:
            return f"its Ray cluster has {caps.ray_kind}, not {resources.accelerator_kind}"
        if caps.ray_nodes < resources.nodes:
            return f"its Ray cluster has {caps.ray_nodes} nodes"
        if caps.ray_accelerators_per_node < resources.accelerators_per_node:
            return f"its Ray nodes have {caps.ray_accelerators_per_node} {caps.ray_kind} each"
        return ""
    if resources.accelerator_kind and resources.accelerator_kind != caps.accelerator_kind:
        return f"has {caps.accelerator_kind}, not {resources.accelerator_kind}"
    if resources.accelerators_per_node > caps.accelerators:
        return f"has {caps.accelerators} {caps.accelerator_kind}"
    if resources.accelerator_memory_bytes > caps.accelerator_memory_bytes:
        return f"has {caps.accelerator_memory_bytes / 2**30:.1f} GiB per device"
    return ""


def is_live(heartbeat_time: datetime, heartbeat_seconds: float, now: datetime) -> bool:
    if heartbeat_time.tzinfo is None:  # SQLite drops the zone
        heartbeat_time = heartbeat_time.replace(tzinfo=now.tzinfo)
    return now - heartbeat_time < timedelta(seconds=LIVE_HEARTBEATS * heartbeat_seconds)


def waiting_reason(resources: Resources, tuning: str, workers: list[tuple[str, Capabilities, bool]]) -> str:
    """Why a queued job needing `resources` has not started, given the live workers as
    (name, capabilities, busy). Empty when a free worker can run it (it is about to start)."""
    need = resources.describe()
    why = " (qlora needs CUDA: bitsandbytes' 4-bit kernels)" if tuning == "qlora" else ""
    if not workers:
        return f"waiting: no live worker (the job needs {need}{why}); start one with `tuneforge worker`"
    fitting = [(name, busy) for name, caps, busy in workers if not misfit(resources, caps)]
    if not fitting:
        seen = "; ".join(f"{name}: {caps.describe()}" for name, caps, _ in workers[:5])
        return f"waiting: no live worker with {need}{why} (live: {seen})"
    if all(busy for _, busy in fitting):
        names = ", ".join(name for name, _ in fitting[:5])
        return f"waiting for a free worker: {len(fitting)} can run it ({names}), all busy"
    return ""
