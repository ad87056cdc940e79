"""Custom Python graders, run in a sandboxed subprocess (OpenAI's `python` grader shape).

The grader is source code defining `grade(sample, item) -> float`: `sample` is
`{"output_text": the model's answer}`, `item` is `{"prompt": the last user turn, "reference": …,
"references": [...]}`. It runs in a child Python (`grader_child.py`) with no network (new user and
network namespaces), no subprocesses, no writes outside its own folder, an address-space cap, a
CPU-time cap and a timer per item; the parent kills it past a wall-clock deadline. A grade that
raises, times out or is not a finite number leaves that sample unscored and is counted.

    check(source)                                  # "" or why the source cannot be a grader
    grade_all(source, samples, timeout_seconds=1)  # (scores, errors, isolated_network)
    grade_items(source, [(sample, item), ...])     # any JSON sample and item (OpenAI graders)
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.kit.children import child_environment

MAX_SOURCE = 64 * 1024
DEFAULT_TIMEOUT = 1.0
MAX_TIMEOUT = 10.0
DEFAULT_MEMORY_MB = 512
MAX_MEMORY_MB = 4096
MAX_WALL_SECONDS = 600.0
CHILD = Path(__file__).with_name("grader_child.py")


@dataclass
class Graded:
    scores: list[float | None]
    # Why samples went unscored: error message -> count.
    errors: dict[str, int]
    isolated_network: bool


def check(source: str) -> str:
    """Why `source` cannot be a grader ("" when it can): too long, not Python, no `grade`."""
    if not source.strip():
        return "give the grader's source, defining grade(sample, item)"
    if len(source.encode()) > MAX_SOURCE:
        return f"the source is over {MAX_SOURCE // 1024} KB"
    try:
        tree = ast.parse(source, "grader.py")
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"not Python source: {exc}"
    grades = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "grade"]
    if not grades:
        return "the source must define a top-level function grade(sample, item)"
    if len(grades[0].args.args) != 2:
        return f"line {grades[0].lineno}: grade takes two arguments (sample, item)"
    return ""


def grade_all(
    source: str,
    samples: Sequence[tuple[str, str, Sequence[str], str]],
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> Graded:
    """Scores of (prediction, reference, references, prompt) samples by the grader, in order."""
    return grade_items(
        source,
        [
            (
                {"output_text": prediction},
                {"prompt": prompt, "reference": reference, "references": list(references or [reference])},
            )
            for prediction, reference, references, prompt in samples
        ],
        timeout_seconds=timeout_seconds,
        memory_mb=memory_mb,
    )


def grade_items(
    source: str,
    items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> Graded:
    """Scores of `grade(sample, item)` for each (sample, item) pair (JSON values), in order."""
    if not items:
        return Graded([], {}, False)
    timeout_seconds = min(max(timeout_seconds, 0.01), MAX_TIMEOUT)
    wall = min(MAX_WALL_SECONDS, 10 + timeout_seconds * len(items) * 1.5)
    with tempfile.TemporaryDirectory(prefix="tuneforge-grader-") as tmp:
        work = Path(tmp)
        (work / "grader.py").write_text(source)
        settings = {
            "timeout_seconds": timeout_seconds,
            "memory_mb": min(max(memory_mb, 64), MAX_MEMORY_MB),
            "cpu_seconds": int(wall) + 1,
        }
        (work / "settings.json").write_text(json.dumps(settings))
        with (work / "items.jsonl").open("w") as handle:
            for sample, item in items:
                handle.write(json.dumps({"sample": sample, "item": item}, ensure_ascii=False) + "\n")
        env = {k: v for k, v in child_environment().items() if not k.startswith(("TUNEFORGE_", "AWS_"))}
        try:
            done = subprocess.run(
                [sys.executable, "-I", str(CHILD), str(work)],
                capture_output=True,
                text=True,
                timeout=wall,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
            )
            output, problem = done.stdout, "" if done.returncode == 0 else _exit_reason(done)
        except subprocess.TimeoutExpired as exc:
            output = (
                exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
            )
            problem = f"the grader ran past its {wall:.0f} s deadline"
    return _read(output, len(items), problem)


def _exit_reason(done: subprocess.CompletedProcess[str]) -> str:
    if done.returncode < 0:
        return f"the grader was killed by signal {-done.returncode} (memory or CPU limit)"
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return f"the grader exited with status {done.returncode}: {last[:200]}"


def _read(output: str, count: int, problem: str) -> Graded:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    isolated = bool(lines and lines[0].get("isolated_network"))
    results = lines[1:]
    errors: dict[str, int] = {}
    if results and "fatal" in results[0]:
        errors[results[0]["fatal"]] = count
        return Graded([None] * count, errors, isolated)
    scores: list[float | None] = []
    for line in results[:count]:
        if "score" in line:
            scores.append(float(line["score"]))
        else:
            scores.append(None)
            errors[line.get("error", "no score")] = errors.get(line.get("error", "no score"), 0) + 1
    missing = count - len(scores)
    if missing:
        errors[problem or "the grader stopped early"] = missing
        scores.extend([None] * missing)
    return Graded(scores, errors, isolated)
