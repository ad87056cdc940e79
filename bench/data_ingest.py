"""Ingest throughput (validate + normalize + store) against `datasets.load_dataset("json")` plus the
same normalization as a `map`, on the same OpenAI-chat JSONL file, in one run.

    python bench/data_ingest.py [--rows 100000]

Paths timed, each on a fresh copy of the work:
  tuneforge (domain)   ingest_file (parse, validate every row with its line, normalize) + Parquet
  tuneforge (service)  the same through the data service: streamed gRPC upload, S3, SQL, event
  datasets + map       load_dataset("json") into a fresh cache, .map(the same converter), to_parquet
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from services.data.ingest import IngestOptions, ingest_file
from services.data.schemas import from_openai_chat
from services.kit.rows import Kind, to_parquet_bytes


def make_file(path: Path, rows: int) -> None:
    rng = random.Random(0)
    words = [
        "天气",
        "学习",
        "模型",
        "训练",
        "数据",
        "weather",
        "model",
        "train",
        "data",
        "质量",
        "评估",
        "北京",
        "上海",
    ]
    with path.open("w") as f:
        for i in range(rows):
            question = "".join(rng.choice(words) for _ in range(rng.randint(5, 30)))
            answer = " ".join(rng.choice(words) for _ in range(rng.randint(10, 60)))
            messages = [
                {"role": "user", "content": f"{i}: {question}"},
                {"role": "assistant", "content": answer},
            ]
            if i % 3 == 0:
                messages.insert(0, {"role": "system", "content": "You are helpful."})
            f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")


def run_tuneforge(path: Path) -> int:
    result = ingest_file(path, Kind.SFT, IngestOptions(filename=path.name))
    to_parquet_bytes(result.rows, Kind.SFT)
    return len(result.rows)


def run_datasets(path: Path, out: Path) -> int:
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as cache:
        dataset = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache)
        normalized = dataset.map(
            lambda record: from_openai_chat(dict(record), Kind.SFT),
            remove_columns=dataset.column_names,
            cache_file_name=str(Path(cache) / "map.arrow"),
        )
        normalized.to_parquet(str(out))
        return len(normalized)


def run_service(path: Path, root: Path) -> int:
    from services.suite.suite import LocalSuite
    from tuneforge import Client

    with (
        LocalSuite(root / "suite") as suite,
        Client(suite.endpoints, api_key=suite.admin_key, project="bench") as client,
    ):
        client.data.create("bench", "sft")
        start = time.perf_counter()
        version = client.data.upload("bench", path)
        run_service.seconds = time.perf_counter() - start  # type: ignore[attr-defined]
        return version.row_count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "chat.jsonl"
        make_file(path, args.rows)
        mb = path.stat().st_size / 1e6
        timings: dict[str, float] = {}
        start = time.perf_counter()
        assert run_tuneforge(path) == args.rows
        timings["tuneforge (domain)"] = time.perf_counter() - start
        start = time.perf_counter()
        assert run_datasets(path, root / "out.parquet") == args.rows
        timings["datasets + map"] = time.perf_counter() - start
        assert run_service(path, root) == args.rows
        timings["tuneforge (service)"] = run_service.seconds  # type: ignore[attr-defined]
    base = timings["datasets + map"]
    print(f"{args.rows} rows, {mb:.1f} MB of OpenAI-chat JSONL")
    for name, seconds in timings.items():
        print(
            f"  {name:<22} {seconds:6.2f} s  {args.rows / seconds:9.0f} rows/s  {mb / seconds:6.1f} MB/s  x{base / seconds:.2f} vs datasets"
        )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "data_ingest.json").write_text(
        json.dumps({"rows": args.rows, "mb": mb, "seconds": timings}, indent=2)
    )


if __name__ == "__main__":
    main()
