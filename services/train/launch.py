"""How the worker starts a job's training processes: one `services.train.runner` process,
`torchrun` with one process per accelerator on this node (DDP; FSDP for full tuning, set by the
runner), or a driver that hands a job of several nodes to a Ray cluster (`ray_launch.py`). The worker's own device list is narrowed to the devices the job asked for, so a
one-device job on an eight-GPU node trains on one GPU (not DataParallel over eight)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from services.kit.children import child_environment, exec_argv
from services.train.placement import Capabilities
from services.train.spec import Resources


def command(
    job_dir: Path, resources: Resources, caps: Capabilities, *, ray_address: str = "", max_restarts: int = 2
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of the job's training processes on this node (or its Ray driver)."""
    processes = resources.accelerators_per_node
    env = child_environment(
        TOKENIZERS_PARALLELISM="false",
        TUNEFORGE_TRAIN_RAY_ADDRESS=ray_address,
        TUNEFORGE_TRAIN_MAX_RESTARTS=str(max_restarts),
    )
    if caps.accelerator_kind == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(caps.accelerators)]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices[:processes])
    runner = ["-m", "services.train.runner", str(job_dir)]
    if resources.nodes > 1:  # the Ray cluster runs it; this process is its driver
        return [sys.executable, "-m", "services.train.ray_launch", str(job_dir)], env
    if processes == 1:
        return [sys.executable, *runner], env
    # torchrun dies with the worker (PR_SET_PDEATHSIG, set by services.kit.children) and takes
    # its processes with it; a failed process stops the group, and the worker restarts the job
    # from its newest checkpoint (no elastic restarts inside torchrun: a deterministic error
    # reported by the runner must not be retried).
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "--max-restarts=0",
        "--monitor-interval=0.5",
    ]
    return exec_argv([*torchrun, *runner]), env
