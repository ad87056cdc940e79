"""Registry version upload/download throughput against a raw `minio` client on the same S3 server.

    python bench/registry_throughput.py [--mib 256] [--repeats 3]

One run starts a local suite, writes a file of random bytes, and times, for the same bytes:
  raw put / get   minio `fput_object` / `fget_object` straight to the suite's S3 server
  stream          `Client.models.upload` / `download` through the registry over gRPC (sha256 checked
                  on both sides, manifest written, version committed in SQL, event published)
  export archive  `Client.models.export`: one streamed tar of the version, verified on both sides
  presigned       the same through presigned URLs (registry commits after hashing the object)
Figures are medians of the repeats, in MiB/s, with each path's ratio to the raw client.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from minio import Minio

from services.suite.suite import LocalSuite
from tuneforge import Client


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=256, help="size of the file moved, MiB")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "model"
        folder.mkdir()
        payload = folder / "model.safetensors"
        header = json.dumps(
            {
                "w": {
                    "dtype": "U8",
                    "shape": [args.mib * 1024 * 1024],
                    "data_offsets": [0, args.mib * 1024 * 1024],
                }
            }
        ).encode()
        with payload.open("wb") as f:
            f.write(len(header).to_bytes(8, "little") + header)
            for _ in range(args.mib):
                f.write(os.urandom(1024 * 1024))
        size_mib = payload.stat().st_size / 1024 / 1024

        with LocalSuite(root / "suite") as suite:
            env = suite.service_env("registry")
            raw = Minio(
                env["TUNEFORGE_S3_ENDPOINT"],
                env["TUNEFORGE_S3_ACCESS_KEY"],
                env["TUNEFORGE_S3_SECRET_KEY"],
                secure=False,
                region="us-east-1",
            )
            bucket = "bench-raw"
            if not raw.bucket_exists(bucket):
                raw.make_bucket(bucket)
            client = Client(suite.endpoints["registry"], api_key=suite.admin_key, project="bench")
            client.models.create("bench")

            # Interleaved, so that caches and background work on the server weigh on every path alike.
            samples: dict[str, list[float]] = {}

            def measure(name: str, fn: Callable[[], object]) -> None:
                start = time.perf_counter()
                fn()
                samples.setdefault(name, []).append(time.perf_counter() - start)

            for i in range(args.repeats):
                key = f"o/{uuid.uuid4().hex}"
                measure("raw put", lambda key=key: raw.fput_object(bucket, key, str(payload)))
                measure("stream upload", lambda: client.models.upload("bench", folder))
                measure("presigned upload", lambda: client.models.upload("bench", folder, presigned=True))
                measure("raw get", lambda key=key, i=i: raw.fget_object(bucket, key, str(root / f"raw-{i}")))
                measure(
                    "stream download",
                    lambda i=i: client.models.download(f"bench/{2 * i + 1}", root / f"d-{i}"),
                )
                measure(
                    "presigned download",
                    lambda i=i: client.models.download(f"bench/{2 * i + 2}", root / f"p-{i}", presigned=True),
                )
                measure(
                    "export archive", lambda i=i: client.models.export(f"bench/{2 * i + 1}", root / f"e-{i}")
                )
            results = {name: statistics.median(values) for name, values in samples.items()}
            client.close()

    rates = {name: size_mib / seconds for name, seconds in results.items()}
    print(f"{size_mib:.0f} MiB file, median of {args.repeats}; MiB/s and ratio to the raw minio client")
    for name, rate in rates.items():
        base = rates["raw put"] if "upload" in name or name == "raw put" else rates["raw get"]
        print(f"  {name:<20} {rate:8.1f} MiB/s   x{rate / base:.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "registry_throughput.json").write_text(
        json.dumps({"mib": size_mib, "seconds": results, "mib_per_s": rates}, indent=2)
    )


if __name__ == "__main__":
    main()
