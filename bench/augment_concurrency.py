"""Augmentation throughput: an `answer` run with 8 requests in flight (the platform: data service,
data worker, teacher client, reply cache, filters, the new version) against the same rows asked one
at a time with the official `openai` client, both through a proxy that adds 200 ms to every call,
to the same serve deployment of a small model. Goal: rows/s ≥ 4×.

    python bench/augment_concurrency.py [--rows 48] [--latency-ms 200] [--max-tokens 8]

Rows/s is source rows answered per second of wall time, from creating the run to its version being
READY (the platform), or from the first call to the last (the baseline). Prints one JSON line.
"""

# No `from __future__ import annotations`: FastAPI reads the proxy handler's annotations at definition.

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving import PROMPTS, build_model


def latency_proxy(upstream: str, delay: float) -> tuple[str, object]:
    """An HTTP proxy in front of the serve API that waits `delay` seconds before each call (a
    remote teacher's network and queueing time). Returns its base URL and the server."""
    import httpx2 as httpx
    import uvicorn
    from fastapi import FastAPI, Request, Response

    app = FastAPI()
    client = httpx.AsyncClient(timeout=120)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        await asyncio.sleep(delay)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "openai-project", "content-type")
        }
        reply = await client.post(
            f"{upstream}/chat/completions", content=await request.body(), headers=headers
        )
        return Response(reply.content, status_code=reply.status_code, media_type="application/json")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/v1", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    import openai

    from services.suite.suite import LocalSuite
    from tuneforge import Client

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_model(root / "model", 128, 2)
        rows = [
            {"prompt": [{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} #{i}"}], "reference": ""}
            for i in range(args.rows)
        ]
        (root / "rows.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        with (
            LocalSuite(root / "suite", services=("registry", "data", "serve")) as suite,
            Client(suite.endpoints, api_key=suite.admin_key, project="bench") as client,
        ):
            client.models.create("base")
            version = client.models.upload("base", model).name
            client.serve.create(
                "writer", version, max_tokens=args.max_tokens, temperature=0.0, max_concurrent_requests=16
            )
            client.serve.wait("writer", timeout=180)
            proxy, server = latency_proxy(suite.endpoints["openai"], args.latency_ms / 1000)
            deployment = "projects/bench/deployments/writer"

            # The baseline: the official client, one call after another (each its own prompt and
            # seed, so the platform's run below asks the serve process the same requests).
            oc = openai.OpenAI(base_url=proxy, api_key=suite.admin_key)
            started = time.perf_counter()
            for row in rows:
                oc.chat.completions.create(
                    model=deployment,
                    messages=row["prompt"],
                    max_tokens=args.max_tokens,
                    temperature=0.7,
                    seed=1,
                )
            sequential = time.perf_counter() - started

            client.data.create("questions", "prompt_only")
            source = client.data.upload("questions", root / "rows.jsonl").name
            client.augment.create_teacher(
                "writer",
                base_url=proxy,
                model=deployment,
                api_key=suite.admin_key,
                max_concurrency=args.concurrency,
            )
            started = time.perf_counter()
            run = client.augment.run(
                "answer",
                source,
                into="answers",
                teacher="writer",
                parameters={"max_tokens": args.max_tokens, "seed": 1, "temperature": 0.7},
                filters={"exact_dedup": False},
            )
            done = client.augment.wait(run.name, timeout=600)
            made = client.data.wait(client.data.get_version(done.output_version))
            concurrent = time.perf_counter() - started
            server.should_exit = True
            assert made.row_count == args.rows, (done.state, done.failure, made.row_count)
            print(
                json.dumps(
                    {
                        "bench": "augment_concurrency",
                        "rows": args.rows,
                        "latency_ms": args.latency_ms,
                        "in_flight": args.concurrency,
                        "sequential_rows_per_s": round(args.rows / sequential, 2),
                        "platform_rows_per_s": round(args.rows / concurrent, 2),
                        "ratio": round(sequential / concurrent, 2),
                        "goal": 4.0,
                        "teacher_calls": done.progress.calls,
                    }
                )
            )


if __name__ == "__main__":
    main()
