"""Jobs on several nodes, handed to an existing Ray cluster as a Ray Train `TorchTrainer`.

    python -m services.train.ray_launch JOB_DIR      the job's driver (the worker starts it)
    python -m services.train.ray_launch --probe      the cluster's nodes and devices, as JSON

The worker starts this driver in place of the runner, so everything it does for a local job holds:
it reads `progress.jsonl` from the job folder, uploads checkpoints, cancels by stopping the child.
The driver connects to `TUNEFORGE_TRAIN_RAY_ADDRESS` and runs the platform's runner on
`nodes × accelerators_per_node` Ray Train workers (`ScalingConfig`; gloo on CPU, NCCL on CUDA).
The job's inputs (spec, rows, base model, the checkpoint to resume) travel through Ray's object
store; the first worker's reports, checkpoints and final model come back through a `Sink` actor,
which the driver drains into the job folder as they arrive. When a Ray worker dies, Ray Train
restarts the group (`FailureConfig(max_failures)`), and each worker resumes from the newest
checkpoint the sink holds.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ADDRESS_VARIABLE = "TUNEFORGE_TRAIN_RAY_ADDRESS"
RESTARTS_VARIABLE = "TUNEFORGE_TRAIN_MAX_RESTARTS"
INPUTS = ("spec.json", "train.jsonl", "validation.jsonl", "base", "parent_adapter")
ROOT = Path(__file__).resolve().parents[2]


def pack(folder: Path, names: tuple[str, ...] | None = None) -> bytes:
    """`folder` (or the named entries of it) as an uncompressed tar, links followed."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", dereference=True) as tar:
        for name in names or tuple(p.name for p in folder.iterdir()):
            if (folder / name).exists():
                tar.add(folder / name, arcname=name)
    return buffer.getvalue()


def unpack(blob: bytes, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(folder, filter="data")  # no absolute paths, links out or devices


def probe(address: str) -> dict[str, Any]:
    """The live nodes of the cluster and the devices of the smallest (GPUs when it has any)."""
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        gpus = [int(n["Resources"].get("GPU", 0)) for n in nodes]
        kind = "cuda" if any(gpus) else "cpu"
        per_node = [int(n["Resources"].get("GPU" if kind == "cuda" else "CPU", 0)) for n in nodes]
        return {
            "nodes": len(nodes),
            "accelerators_per_node": min(per_node, default=0),
            "kind": kind,
            "version": ray.__version__,
        }
    finally:
        ray.shutdown()


def _sink_class() -> Any:
    import ray

    @ray.remote(num_cpus=0)
    class Sink:
        """The driver's mailbox: the first worker's reports and files, in order; the newest
        checkpoint, for workers that restart; how many times the group started."""

        def __init__(self) -> None:
            self.items: list[tuple[str, Any]] = []
            self.newest: tuple[int, bytes] | None = None
            self.starts = 0

        def started(self) -> int:
            self.starts += 1
            return self.starts

        def report(self, record: dict[str, Any]) -> None:
            self.items.append(("report", record))

        def files(self, relative: str, blob: bytes, step: int | None = None) -> None:
            if step is not None:
                self.newest = (step, blob)
            self.items.append(("files", (relative, blob)))

        def newest_checkpoint(self) -> tuple[int, bytes] | None:
            return self.newest

        def drain(self) -> list[tuple[str, Any]]:
            out, self.items = self.items, []
            return out

    return Sink


def train_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the job folder rebuilt locally, the runner run on it."""
    import ray
    import ray.train

    from services.train import runner

    sink = config["sink"]
    rank = ray.train.get_context().get_world_rank()
    work = Path(tempfile.mkdtemp(prefix="tuneforge-ray-"))
    unpack(ray.get(config["inputs"]), work)
    newest = ray.get(sink.newest_checkpoint.remote())
    if newest is not None:  # Ray restarted the group: go on from the newest checkpoint
        step, blob = newest
        unpack(blob, work / "checkpoints" / f"checkpoint-{step}")
        (work / "resume").write_text(str(work / "checkpoints" / f"checkpoint-{step}"))
    where = {"rank": rank, "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}
    ray.get(sink.report.remote({"type": "ray_worker", "time": time.time(), **where}))  # for the logs
    if rank == 0:
        starts = ray.get(sink.started.remote())
        if starts > 1:
            ray.get(sink.report.remote({"type": "restarted", "time": time.time(), "restarts": starts - 1}))

    def forward(record: dict[str, Any]) -> None:
        if rank == 0 and record["type"] == "checkpoint":
            folder = Path(record["path"])
            relative = f"checkpoints/{folder.name}"
            ray.get(sink.files.remote(relative, pack(folder), record["step"]))
            record = {**record, "path": relative}
        if rank == 0 and record["type"] == "done":
            ray.get(sink.files.remote("final", pack(work / "final")))
            if record.get("best_checkpoint"):
                record = {**record, "best_checkpoint": f"checkpoints/{Path(record['best_checkpoint']).name}"}
        ray.get(sink.report.remote(record))

    code = runner.run(work, forward=forward)
    if code == runner.PEER_LOST:
        raise RuntimeError("a worker of the group was lost")  # Ray Train restarts the group


def drive(job_dir: Path) -> int:
    """Run the job on the Ray cluster; write what comes back into `job_dir` as the runner would."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from services.train.spec import JobSpec

    spec = JobSpec.from_json(json.loads((job_dir / "spec.json").read_text()))
    cuda = spec.resources.accelerator_kind == "cuda"
    ray.init(
        address=os.environ[ADDRESS_VARIABLE],
        logging_level="WARNING",
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}},
    )
    inputs = ray.put(pack(job_dir, INPUTS))
    resume = (job_dir / "resume").read_text().strip() if (job_dir / "resume").exists() else ""
    sink = _sink_class().remote()
    if resume:  # the worker's newest stored checkpoint (a retried attempt): the group starts there
        step = int(Path(resume).name.rsplit("-", 1)[-1])
        ray.get(sink.files.remote(f"checkpoints/checkpoint-{step}", pack(Path(resume)), step))
        ray.get(sink.drain.remote())  # the job folder has those files already
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"inputs": inputs, "sink": sink},
        scaling_config=ScalingConfig(
            num_workers=spec.resources.processes,
            use_gpu=cuda,
            resources_per_worker={"GPU": 1} if cuda else {"CPU": 1},
        ),
        torch_config=TorchConfig(backend="nccl" if cuda else "gloo"),
        run_config=RunConfig(
            name=f"tuneforge-{job_dir.name}",
            storage_path=str(job_dir / "ray"),
            failure_config=FailureConfig(max_failures=int(os.environ.get(RESTARTS_VARIABLE, "2"))),
        ),
    )
    stop = threading.Event()
    relay = threading.Thread(target=_relay, args=(sink, job_dir, stop), daemon=True)
    relay.start()
    failure = ""
    try:
        trainer.fit()
    except Exception as error:  # the group failed more often than FailureConfig allows
        failure = f"{type(error).__name__}: {error}"
    stop.set()
    relay.join()
    if failure:
        with (job_dir / "progress.jsonl").open("a") as progress:
            record = {
                "type": "error",
                "time": time.time(),
                "reason": "RAY_JOB_FAILED",
                "message": failure[-2000:],
            }
            progress.write(json.dumps(record) + "\n")
    return 1 if failure else 0


def _relay(sink: Any, job_dir: Path, stop: threading.Event) -> None:
    """Drain the sink into the job folder every half second, and once more at the end."""
    import ray

    with (job_dir / "progress.jsonl").open("a", buffering=1) as progress:
        while True:
            finished = stop.is_set()
            for kind, payload in ray.get(sink.drain.remote()):
                if kind == "files":
                    relative, blob = payload
                    unpack(blob, job_dir / relative)
                    continue
                record = dict(payload)
                for key in ("path", "best_checkpoint"):
                    if record.get(key):
                        record[key] = str(job_dir / record[key])
                progress.write(json.dumps(record) + "\n")
            if finished:
                return
            stop.wait(0.5)


def main() -> None:
    if sys.argv[1:] == ["--probe"]:
        print(json.dumps(probe(os.environ[ADDRESS_VARIABLE])))
        return
    from services.kit.children import die_with_parent

    die_with_parent()
    sys.exit(drive(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
