"""Worst-case time and memory of the work one caller could make the platform do with the inputs a
security probe used, measured on what the services run:

- derive on a tiny upload whose config.json is bare (transformers would build a 7B llama from it):
  `convert_dtype` and `quantize`, through the registry's bounded child (peak resident memory);
- cleaning with backtracking patterns on one row of 28 `a`s and `!`: the regex engine with its time
  budget against Python's `re` (the engine before) on shorter rows, whose time doubles per `a`;
- an evaluation asking for `bleu4` 10,000 times: the time to its refusal.

    python bench/hostile_inputs.py
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from services.data import cleaning
from services.eval.evaluations import parse_request
from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.rows import Kind
from services.registry.deriving import run_bounded
from tuneforge.eval.v1 import evaluation_pb2


def derive(operation: str, target: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        source.mkdir()
        save_file({"weight": np.zeros((128, 8), np.float32)}, str(source / "model.safetensors"))
        (source / "config.json").write_text(json.dumps({"model_type": "llama"}))
        started = time.monotonic()
        try:
            peak = asyncio.run(
                run_bounded(operation, target, Path(tmp), memory_bytes=8 * 1024**3, time_limit=600)
            )
            outcome = "done"
        except FailedPrecondition as error:
            peak, outcome = int(error.metadata["peak_resident_bytes"]), f"refused ({error.reason})"
        return (
            f"{operation}:{target}: {outcome} in {time.monotonic() - started:.1f} s, peak {peak / 1e6:.0f} MB"
        )


def clean(pattern: str, a_count: int = 28) -> str:
    rows = [
        {
            "id": "r1",
            "messages": [
                {"role": "user", "content": "a" * a_count + "!"},
                {"role": "assistant", "content": "ok"},
            ],
        }
    ]
    started = time.monotonic()
    try:
        cleaning.regex_filter(rows, Kind.SFT, cleaning.StepReport("regex_filter", 1), pattern=pattern)
        outcome = "done"
    except cleaning.StepFailed as failure:
        outcome = f"stopped ({failure.reason})"
    return f"regex engine {pattern} on {a_count} a's: {outcome} in {time.monotonic() - started:.2f} s"


def plain_re(pattern: str, a_count: int) -> str:
    started = time.monotonic()
    re.compile(pattern).search("a" * a_count + "!")
    seconds = time.monotonic() - started
    return (
        f"python re {pattern} on {a_count} a's: {seconds:.2f} s "
        f"(28 a's: about {seconds * 2 ** (28 - a_count):.0f} s)"
    )


def metrics() -> str:
    request = evaluation_pb2.Evaluation(
        model_versions=["projects/p/models/m/versions/1"], metrics=["bleu4"] * 10000
    )
    started = time.monotonic()
    try:
        parse_request(request)
        outcome = "accepted"
    except InvalidArgument as error:
        outcome = f"refused on {error.violations[0].field}"
    return f"metrics bleu4 x 10000: {outcome} in {(time.monotonic() - started) * 1000:.1f} ms"


if __name__ == "__main__":
    for line in (
        derive("convert_dtype", "bfloat16"),
        derive("quantize", "int8"),
        clean("(a+)+$"),
        clean("(a|aa)+$"),
        clean("(a|aa)+$", 40),
        plain_re("(a+)+$", 22),
        metrics(),
    ):
        print(line, flush=True)
