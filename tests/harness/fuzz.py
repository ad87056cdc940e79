"""Request fuzzing, driven by the protos: random requests of every RPC (seeded), built field by field
from the descriptors with the values that break services — empty and oversized strings, names of the
wrong pattern, page sizes negative or huge, garbage page tokens, unknown enum values, NaN, infinities
and negative numbers, sampling rates of 0 and 1e9 — sent with a project admin's key to that project.

The bar: no INTERNAL or UNKNOWN answer, no service down afterwards. Counted by status code.

    python -m tests.harness.fuzz --endpoints ~/.tuneforge/endpoints.json --key tf_… --project fuzz \\
        --requests 20000 --seed 7        # a longer run against a running suite (`tuneforge up`)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor
from google.protobuf.message import Message

from tests.harness.rpcs import Rpc, all_rpcs, call

MAX_DEPTH = 3
HUGE = "x" * 70_000


@dataclass
class Values:
    """The values the fuzzer draws from, with names in the fuzzed project."""

    project: str
    rng: random.Random
    names: list[str] = field(default_factory=list)

    def string(self, name: str) -> str:
        p = self.project
        pool = [
            "",
            "a",
            HUGE,
            "名字🙂\u200b",
            f"projects/{p}",
            f"projects/{p}/",
            f"projects/{p}/datasets/../models/x",
            f"projects/{p}/datasets/UPPER",
            f"projects/{p}/models/m/versions/0",
            f"projects/{p}/models/m/versions/-1",
            f"projects/{p}/trainingJobs/j/checkpoints/99999999999999",
            "!!garbage-page-token!!",
            "eyJ2IjogMX0.AAAA",
            "%2e%2e%2f%2e%2e",
            "\x00\x01",
            '{"not": "closed"',
            'kind = "sft" AND AND',
            "local:///etc",
            "http://169.254.169.254/latest",
            "s" * 129,
            *self.names,
        ]
        if name in ("name", "parent") and self.names and self.rng.random() < 0.5:
            return self.rng.choice(self.names)
        return self.rng.choice(pool)

    def number(self, field_descriptor: descriptor.FieldDescriptor) -> Any:
        kind = field_descriptor.type
        if kind in (field_descriptor.TYPE_DOUBLE, field_descriptor.TYPE_FLOAT):
            return self.rng.choice([0.0, -1.0, 1e9, math.nan, math.inf, -math.inf, 0.5, 1.0, 1e-12, 10.0])
        if kind == field_descriptor.TYPE_BOOL:
            return self.rng.random() < 0.5
        small = kind in (
            field_descriptor.TYPE_INT32,
            field_descriptor.TYPE_SINT32,
            field_descriptor.TYPE_SFIXED32,
        )
        unsigned = kind in (
            field_descriptor.TYPE_UINT32,
            field_descriptor.TYPE_UINT64,
            field_descriptor.TYPE_FIXED32,
        )
        top = 2**31 - 1 if small else 2**63 - 1
        picks = [0, 1, 2, 7, 1000, 10**6, top] + ([] if unsigned else [-1, -(2**31) if small else -(2**63)])
        if kind in (field_descriptor.TYPE_UINT32, field_descriptor.TYPE_FIXED32):
            picks = [p for p in picks if p <= 2**32 - 1]
        return self.rng.choice(picks)


def fill(message: Message, values: Values, depth: int = 0, skip: float = 0.35) -> Message:
    """Set a random subset of `message`'s fields to hostile values (oneofs: one member); each field
    is left unset with probability `skip` (a sparse request reaches deeper than a full one)."""
    rng = values.rng
    chosen_oneofs: dict[str, str] = {}
    for oneof in message.DESCRIPTOR.oneofs:
        chosen_oneofs[oneof.name] = rng.choice(oneof.fields).name
    for f in message.DESCRIPTOR.fields:
        if f.containing_oneof is not None and chosen_oneofs.get(f.containing_oneof.name) != f.name:
            continue
        if rng.random() < skip:
            continue
        if f.type == f.TYPE_MESSAGE:
            if depth >= MAX_DEPTH:
                continue
            entry = f.message_type.GetOptions().map_entry
            if f.message_type.full_name.startswith("google.protobuf."):
                _well_known(getattr(message, f.name), f, rng)
                continue
            if entry:
                target = getattr(message, f.name)
                for _ in range(rng.randint(0, 2)):
                    key = values.string("key")[:200]
                    value_field = f.message_type.fields_by_name["value"]
                    if value_field.type == value_field.TYPE_MESSAGE:
                        fill(target[key], values, depth + 1, skip)
                    else:
                        target[key] = _scalar(value_field, values)
                continue
            if f.is_repeated:
                for _ in range(rng.randint(0, 3)):
                    fill(getattr(message, f.name).add(), values, depth + 1, skip)
            else:
                fill(getattr(message, f.name), values, depth + 1, skip)
            continue
        if f.is_repeated:
            getattr(message, f.name).extend(_scalar(f, values) for _ in range(rng.randint(0, 3)))
        else:
            setattr(message, f.name, _scalar(f, values))
    return message


def _scalar(f: descriptor.FieldDescriptor, values: Values) -> Any:
    if f.type == f.TYPE_STRING:
        return values.string(f.name)
    if f.type == f.TYPE_BYTES:
        return values.rng.choice([b"", b"\xff\xfe", b"x" * 100, bytes(range(256))])
    if f.type == f.TYPE_ENUM:
        known = [v.number for v in f.enum_type.values]
        return values.rng.choice([*known, 999, -1])
    return values.number(f)


def _well_known(message: Message, f: descriptor.FieldDescriptor, rng: random.Random) -> None:
    name = f.message_type.full_name
    if name == "google.protobuf.Timestamp":
        message.seconds = rng.choice([0, -1, 2**40, 1_700_000_000, 253402300799])
    elif name == "google.protobuf.FieldMask":
        message.paths.extend(rng.sample(["name", "display_name", "unknown_field", "quota", "tags", ""], 2))
    elif name == "google.protobuf.Struct":
        message.update({"a": rng.choice([1, "x", None, [1, 2], {"deep": True}])})


@dataclass
class FuzzResult:
    codes: Counter[str] = field(default_factory=Counter)
    by_rpc: dict[str, Counter[str]] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(self.codes.values())


def fuzz(
    endpoints: Mapping[str, str], token: str, project: str, requests: int, seed: int, names: list[str]
) -> FuzzResult:
    """Send `requests` random requests spread evenly over every RPC."""
    rng = random.Random(seed)
    values = Values(project, rng, names)
    rpcs = all_rpcs()
    result = FuzzResult()
    channels = {s: grpc.insecure_channel(endpoints[s]) for s in {r.service for r in rpcs}}
    try:
        for i in range(requests):
            rpc = rpcs[i % len(rpcs)]
            message = fill(rpc.new_request(), values, skip=rng.choice([0.35, 0.8]))
            code, detail = _send(channels[rpc.service], rpc, message, token, values)
            result.codes[code] += 1
            result.by_rpc.setdefault(rpc.name, Counter())[code] += 1
            if code in ("INTERNAL", "UNKNOWN", "DATA_LOSS"):
                result.bad.append(f"{rpc.path} -> {code}: {detail[:200]} (request {i} of seed {seed})")
    finally:
        for channel in channels.values():
            channel.close()
    return result


def _send(channel: grpc.Channel, rpc: Rpc, message: Message, token: str, values: Values) -> tuple[str, str]:
    stream: list[Message] = [message]
    if rpc.method.client_streaming:
        # An upload stream: a header, some chunks, perhaps a finish that lies about the sha256, or
        # a stream that just stops.
        chunk_type = type(message)
        chunks = [fill(chunk_type(), values, MAX_DEPTH - 1) for _ in range(values.rng.randint(0, 3))]
        stream = [message, *chunks]
    try:
        call(channel, rpc, stream, token=token, timeout=30)
    except grpc.RpcError as error:
        return error.code().name, error.details() or ""
    return "OK", ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=Path, required=True, help="endpoints.json of a running suite")
    parser.add_argument("--key", required=True, help="an admin key of the fuzzed project")
    parser.add_argument("--project", required=True)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = fuzz(
        json.loads(args.endpoints.read_text()), args.key, args.project, args.requests, args.seed, []
    )
    print(
        json.dumps({"requests": result.sent, "codes": dict(result.codes), "bad": result.bad[:50]}, indent=1)
    )
    return 1 if result.bad else 0


if __name__ == "__main__":
    sys.exit(main())
