"""Batching of concurrent requests: 16 clients at once against the same requests sent one at a time,
through the serve service (OpenAI API, a serving process running the transformers engine on CPU),
on the same model, in one run. Goal: throughput ≥ 3×.

    python bench/serve_concurrency.py [--hidden 256] [--layers 4] [--max-tokens 32] [--requests 32]

Throughput is completion tokens per second of wall time over all requests (greedy decoding, the
same prompts in both runs).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _serving import build_model, call_concurrently, serving_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    from tuneforge import Client

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_model(root / "model", args.hidden, args.layers)
        with (
            serving_suite(root / "suite") as suite,
            Client(suite.endpoints, api_key=suite.admin_key, project="bench") as client,
        ):
            client.models.create("base")
            version = client.models.upload("base", model).name
            client.serve.create("bench", version, max_concurrent_requests=args.clients)
            client.serve.wait("bench")
            url, key = suite.endpoints["openai"], suite.admin_key
            call_concurrently(url, key, "bench", ["bench"], 2, 2, args.max_tokens)  # warm up
            one = call_concurrently(url, key, "bench", ["bench"], 1, args.requests, args.max_tokens)
            many = call_concurrently(
                url, key, "bench", ["bench"], args.clients, args.requests // args.clients * 2, args.max_tokens
            )
    ratio = many.tokens_per_second / one.tokens_per_second
    print(
        json.dumps(
            {
                "model": f"llama hidden {args.hidden}, {args.layers} layers",
                "max_tokens": args.max_tokens,
                "sequential": {
                    "requests": len(one.latencies),
                    "tokens_per_second": round(one.tokens_per_second, 1),
                    "latency_ms_p50": round(one.p50_ms(), 1),
                },
                f"{args.clients}_concurrent": {
                    "requests": len(many.latencies),
                    "tokens_per_second": round(many.tokens_per_second, 1),
                    "latency_ms_p50": round(many.p50_ms(), 1),
                },
                "failures": one.failures + many.failures,
                "throughput_ratio": round(ratio, 2),
                "goal": ">= 3.0",
                "met": ratio >= 3.0 and not (one.failures or many.failures),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
