"""Derived versions of one version: cleaning pipelines and train/validation splits.

The request is checked here (operations, ratios, the source being READY) and a PROCESSING version is
accepted; a data worker runs the pipeline or the split (`tasks.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from services.data import cleaning, flags
from services.data.catalog import DataCatalog
from services.data.convert import check_seed, enum_from_proto, version_name
from services.data.versions import NewVersion, Versions
from services.kit import pii
from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.names import check_text
from services.kit.rows import Kind
from tuneforge.data.v1 import data_service_pb2, dataset_pb2
from tuneforge.enums import enum_values

MAX_OPERATIONS = 20
DEDUP_FIELD_FROM_PROTO = {v: k for k, v in enum_values(data_service_pb2.DedupField, "DEDUP_FIELD_").items()}


class Transforms:
    def __init__(self, catalog: DataCatalog, versions: Versions) -> None:
        self.catalog = catalog
        self.versions = versions

    async def clean(
        self,
        name: str,
        operations: Sequence[data_service_pb2.CleaningOperation],
        description: str,
        request_id: str,
    ) -> dataset_pb2.DatasetVersion:
        steps = [operation(op, f"operations[{i}]") for i, op in enumerate(operations)]
        if not steps:
            raise InvalidArgument.field("operations", "give at least one cleaning operation")
        if len(steps) > MAX_OPERATIONS:
            raise InvalidArgument.field("operations", f"at most {MAX_OPERATIONS} operations")
        check_text(description, "description", 4000)
        check_text(request_id, "request_id", 128)
        catalog = self.catalog
        row = await catalog.db.run(lambda s: catalog.version_row(s, name, "name", ready=True))
        source = version_name(row)
        return await self.versions.accept(
            row.dataset_uid,
            NewVersion(
                kind=Kind(row.kind),
                task={
                    "op": "clean",
                    "source": row.uid,
                    "operations": [{"name": s.name, "params": s.params} for s in steps],
                },
                recipe={
                    "type": "cleaning",
                    "source": source,
                    "operations": [{"name": s.name, **s.params} for s in steps],
                },
                source_file=source,
                description=description or f"cleaned from {source}",
                request_id=request_id,
            ),
        )

    async def split(
        self, name: str, validation_ratio: float, seed: int, request_id: str
    ) -> tuple[dataset_pb2.DatasetVersion, dataset_pb2.DatasetVersion]:
        if not 0 < validation_ratio <= 0.5:
            raise InvalidArgument.field(
                "validation_ratio", f"must be above 0 and at most 0.5 (got {validation_ratio})"
            )
        check_seed(seed)
        check_text(request_id, "request_id", 128)
        catalog = self.catalog
        row = await catalog.db.run(lambda s: catalog.version_row(s, name, "name", ready=True))
        if row.row_count < 2:
            raise FailedPrecondition(
                f"{version_name(row)} has {row.row_count} row; a split needs at least 2",
                reason="TOO_FEW_ROWS",
            )
        source = version_name(row)
        recipe = {"type": "split", "source": source, "validation_ratio": validation_ratio, "seed": seed}
        parts = [
            NewVersion(
                kind=Kind(row.kind),
                task={
                    "op": "split",
                    "source": row.uid,
                    "ratio": validation_ratio,
                    "seed": seed,
                    "part": part,
                },
                recipe={**recipe, "part": part},
                source_file=source,
                description=f"{part} split of {source}",
                tags={"split": part},
                request_id=f"{request_id}#{part}" if request_id else "",
            )
            for part in ("train", "validation")
        ]
        train, validation = await catalog.outbox.write(
            catalog.db, lambda s: [self.versions.accept_in(s, row.dataset_uid, p) for p in parts]
        )
        return train, validation


def operation(message: data_service_pb2.CleaningOperation, field_name: str) -> cleaning.Operation:
    which = message.WhichOneof("operation")
    if which is None:
        raise InvalidArgument.field(field_name, "choose an operation: " + ", ".join(cleaning.OPERATIONS))
    body = getattr(message, which)
    path = f"{field_name}.{which}"
    if which == "near_dedup":
        threshold = body.threshold or 0.8
        if not 0 < threshold <= 1:
            raise InvalidArgument.field(f"{path}.threshold", "must be above 0 and at most 1")
        shingle = body.shingle_size or 5
        if not 1 <= shingle <= 32:
            raise InvalidArgument.field(f"{path}.shingle_size", "must be between 1 and 32")
        num_perm = body.num_perm or 128
        if not 16 <= num_perm <= 1024:
            raise InvalidArgument.field(f"{path}.num_perm", "must be between 16 and 1024")
        field = enum_from_proto(body.field, DEDUP_FIELD_FROM_PROTO, f"{path}.field") or "row"
        return cleaning.Operation(
            which, {"threshold": threshold, "shingle_size": shingle, "num_perm": num_perm, "field": field}
        )
    if which == "fill_placeholders":
        values = dict(body.values)
        if not values:
            raise InvalidArgument.field(f"{path}.values", "give at least one placeholder name and its text")
        for name, text in values.items():
            if not flags.PLACEHOLDER.fullmatch("{{" + name + "}}"):
                raise InvalidArgument.field(f"{path}.values[{name[:64]}]", "is not a placeholder name")
            if len(text) > 10_000:
                raise InvalidArgument.field(f"{path}.values[{name}]", "is over 10 000 characters")
        return cleaning.Operation(which, {"values": values})
    if which == "length_filter":
        for attribute in ("min_characters", "max_characters", "min_response_characters"):
            if getattr(body, attribute) < 0:
                raise InvalidArgument.field(f"{path}.{attribute}", "must not be negative")
        if body.max_characters and body.max_characters < body.min_characters:
            raise InvalidArgument.field(f"{path}.max_characters", "must not be below min_characters")
        return cleaning.Operation(
            which,
            {
                "min_characters": body.min_characters,
                "max_characters": body.max_characters,
                "min_response_characters": body.min_response_characters,
            },
        )
    if which == "mask_pii":
        unknown = [k for k in body.kinds if k not in pii.KINDS]
        if unknown:
            raise InvalidArgument.field(
                f"{path}.kinds", f"unknown kinds {unknown}; choose from {', '.join(pii.KINDS)}"
            )
        return cleaning.Operation(which, {"kinds": list(body.kinds)})
    if which == "regex_filter":
        try:
            regex.compile(body.pattern)  # the engine the step runs on (with a time budget)
        except regex.error as exc:
            raise InvalidArgument.field(f"{path}.pattern", f"not a valid regular expression: {exc}") from None
        if not body.pattern:
            raise InvalidArgument.field(f"{path}.pattern", "is empty")
        if len(body.pattern) > 1000:
            raise InvalidArgument.field(f"{path}.pattern", f"is {len(body.pattern)} characters; at most 1000")
        return cleaning.Operation(which, {"pattern": body.pattern, "keep_matching": body.keep_matching})
    if which == "keyword_filter":
        if not [k for k in body.keywords if k.strip()]:
            raise InvalidArgument.field(f"{path}.keywords", "give at least one keyword")
        return cleaning.Operation(which, {"keywords": list(body.keywords)})
    return cleaning.Operation(which)
