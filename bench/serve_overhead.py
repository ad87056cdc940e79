"""What the serving layer adds to a call: the OpenAI-compatible HTTP API (bearer auth, parameter
checks, admission, routing over gRPC to the serving process and back, the call log written to SQL)
against calling the same engine in-process (with the `Batcher` settings the serving process uses),
one request at a time, the same prompts, greedy, interleaved in blocks, in one run.
Goal: ≤ 10% added latency at p50.

    python bench/serve_overhead.py [--hidden 256] [--layers 4] [--max-tokens 32] [--requests 60]

The layer is timed with a plain HTTP client (httpx, keep-alive). The same calls through the official
`openai` client are reported beside it: the difference is the client's own cost (its request
building and response models), not the server's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from _serving import PROMPTS, build_model, serving_suite


class InProcess:
    """The engine alone, as the serving process runs it."""

    def __init__(self, model: Path) -> None:
        from services.serve.engine import Batcher, LoadedModel

        self.loaded = LoadedModel(model, "cpu")
        self.batcher = Batcher(self.loaded, max_batch=16, window=0.01, wait_when_idle=False)

    def __call__(self, prompt: str, max_tokens: int) -> int:
        from services.serve.engine import BASE_ADAPTER, Request

        done, usage = threading.Event(), {}

        def emit(delta: str, finish: str, u: dict | None) -> None:
            if finish:
                usage.update(u or {})
                done.set()

        ids = self.loaded.prompt_ids([{"role": "user", "content": prompt}], "")
        self.batcher.submit(Request(BASE_ADAPTER, ids, max_tokens, 0.0, 1.0, [], None, emit))
        done.wait()
        return usage["completion_tokens"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    import httpx2
    import openai

    from tuneforge import Client

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_model(root / "model", args.hidden, args.layers)
        with (
            serving_suite(root / "suite") as suite,
            Client(suite.endpoints, api_key=suite.admin_key, project="bench") as client,
        ):
            client.models.create("base")
            client.serve.create("bench", client.models.upload("base", model).name)
            client.serve.wait("bench")
            url, key = suite.endpoints["openai"], suite.admin_key
            http = httpx2.Client(
                base_url=url,
                headers={"Authorization": f"Bearer {key}", "OpenAI-Project": "bench"},
                timeout=60,
            )
            oc = openai.OpenAI(base_url=url, api_key=key, project="bench", max_retries=0)

            def over_http(prompt: str, max_tokens: int) -> int:
                body = {"model": "bench", "messages": [{"role": "user", "content": prompt}]}
                response = http.post(
                    "/chat/completions", json={**body, "max_tokens": max_tokens, "temperature": 0}
                )
                response.raise_for_status()
                return response.json()["usage"]["completion_tokens"]

            def over_openai(prompt: str, max_tokens: int) -> int:
                answer = oc.chat.completions.create(
                    model="bench",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=max_tokens,
                    temperature=0,
                )
                return answer.usage.completion_tokens

            paths = {
                "engine_in_process": InProcess(model),
                "http_api": over_http,
                "openai_client": over_openai,
            }
            timings: dict[str, list[float]] = {name: [] for name in paths}
            tokens = dict.fromkeys(paths, 0)
            for path in paths.values():  # warm up
                path(PROMPTS[0], args.max_tokens)
            for block in range(args.requests // 10):  # interleaved: every path sees the same machine
                for name, path in paths.items():
                    for i in range(10):
                        started = time.perf_counter()
                        tokens[name] += path(PROMPTS[(block * 10 + i) % len(PROMPTS)], args.max_tokens)
                        timings[name].append(time.perf_counter() - started)
            paths["engine_in_process"].batcher.close()  # type: ignore[attr-defined]
            logged = client.serve.stats("bench").total.requests
    p50 = {name: statistics.median(values) * 1000 for name, values in timings.items()}
    added = (p50["http_api"] - p50["engine_in_process"]) / p50["engine_in_process"]
    with_client = (p50["openai_client"] - p50["engine_in_process"]) / p50["engine_in_process"]
    print(
        json.dumps(
            {
                "model": f"llama hidden {args.hidden}, {args.layers} layers",
                "max_tokens": args.max_tokens,
                "latency_ms_p50": {name: round(value, 2) for name, value in p50.items()},
                "completion_tokens": tokens,
                "same_work": len(set(tokens.values())) == 1,
                "calls_logged": logged,
                "added_latency_at_p50": f"{added:.1%}",
                "added_with_the_openai_client": f"{with_client:.1%}",
                "goal": "<= 10%",
                "met": added <= 0.10,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
