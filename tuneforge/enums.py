"""Names of proto enum values, read from the generated descriptors (never hand-coded numbers).

    enum_names(dataset_pb2.DatasetKind, "DATASET_KIND_")   # {1: "text", 2: "sft", ...}
    enum_values(dataset_pb2.DatasetKind, "DATASET_KIND_")  # {"text": 1, "sft": 2, ...}

Shared by the SDK and the services: it depends on nothing but protobuf.
"""

from __future__ import annotations

from typing import Any


def enum_names(enum: Any, prefix: str) -> dict[int, str]:
    """value → lower-case short name, without the `…_UNSPECIFIED = 0` value."""
    return {
        value: name.removeprefix(prefix).lower()
        for name, value in enum.items()
        if not name.endswith("_UNSPECIFIED")
    }


def enum_values(enum: Any, prefix: str) -> dict[str, int]:
    """lower-case short name → value, without the `…_UNSPECIFIED = 0` value."""
    return {name: value for value, name in enum_names(enum, prefix).items()}
