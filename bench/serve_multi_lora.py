"""Multi-LoRA serving: 4 LoRA adapters deployed on one shared base model against the same 4
adapters merged into 4 full models deployed separately, each setup in a fresh serving process,
through the serve service, in one run. Goals: resident memory ≤ 0.4×, throughput ≥ 0.9×.

    python bench/serve_multi_lora.py [--hidden 1024] [--layers 8] [--max-tokens 32] [--clients 16]

Memory is the serving process's resident set (VmRSS) once its deployments are loaded, less the
same process idle before it loaded anything (the Python, torch and gRPC it always holds).
Throughput is completion tokens per second with `--clients` concurrent clients spread evenly over
the 4 deployments (greedy, the same prompts for both setups).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _serving import build_model, call_concurrently, make_adapter, merged, rss_bytes, serving_suite

ADAPTERS = 4


def measure(suite, client, worker: str, versions: list[str], args: argparse.Namespace) -> dict:  # type: ignore[no-untyped-def]
    pid = suite.processes[worker].process.pid
    time.sleep(2)
    idle = rss_bytes(pid)
    names = [f"d{i}" for i in range(len(versions))]
    for name, version in zip(names, versions, strict=True):
        client.serve.create(name, version, max_concurrent_requests=args.clients)
    for name in names:
        state = client.serve.wait(name, timeout=300)
        assert state.state_reason == "" and state.ready_replicas == 1, state
    url, key = suite.endpoints["openai"], suite.admin_key
    call_concurrently(url, key, "bench", names, len(names), 1, args.max_tokens)  # warm up
    loaded = rss_bytes(pid)
    run = call_concurrently(url, key, "bench", names, args.clients, args.per_client, args.max_tokens)
    peak = rss_bytes(pid)
    for name in names:
        client.serve.delete(name)
    return {
        "resident_mb_over_idle": round((loaded - idle) / 2**20, 1),
        "resident_mb_over_idle_after_load": round((peak - idle) / 2**20, 1),
        "tokens_per_second": round(run.tokens_per_second, 1),
        "requests": len(run.latencies),
        "failures": run.failures[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=4)
    args = parser.parse_args()
    from tuneforge import Client

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = build_model(root / "base", args.hidden, args.layers)
        adapters = [make_adapter(base, root / f"adapter-{i}", seed=i) for i in range(ADAPTERS)]
        full = [merged(base, adapter, root / f"merged-{i}") for i, adapter in enumerate(adapters)]
        with (
            serving_suite(root / "suite", TUNEFORGE_SERVE_WORKER_CAPACITY="8") as suite,
            Client(suite.endpoints, api_key=suite.admin_key, project="bench") as client,
        ):
            client.models.create("base")
            base_version = client.models.upload("base", base).name
            lora_versions, full_versions = [], []
            for i in range(ADAPTERS):
                client.models.create(f"lora-{i}")
                lora_versions.append(
                    client.models.upload(f"lora-{i}", adapters[i], lineage={"base_model": base_version}).name
                )
                client.models.create(f"full-{i}")
                full_versions.append(client.models.upload(f"full-{i}", full[i]).name)
            shared = measure(suite, client, "serve-worker-0", lora_versions, args)
            suite.processes["serve-worker-0"].stop()
            suite.start_worker(1, kind="serve")  # a fresh process for the other setup
            separate = measure(suite, client, "serve-worker-1", full_versions, args)
    memory = shared["resident_mb_over_idle"] / separate["resident_mb_over_idle"]
    throughput = shared["tokens_per_second"] / separate["tokens_per_second"]
    print(
        json.dumps(
            {
                "model": f"llama hidden {args.hidden}, {args.layers} layers; LoRA rank 8 on every projection",
                "clients": args.clients,
                "4_adapters_on_one_base": shared,
                "4_separate_deployments": separate,
                "memory_ratio": round(memory, 3),
                "throughput_ratio": round(throughput, 3),
                "goals": {"memory_ratio": "<= 0.4", "throughput_ratio": ">= 0.9"},
                "met": memory <= 0.4 and throughput >= 0.9,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
