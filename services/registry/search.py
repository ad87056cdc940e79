"""The model catalogue (模型广场): the versions of a project searched by the facts read from their files."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.errors import InvalidArgument
from services.kit.names import parse_filter, quote
from services.registry.convert import version_to_proto
from services.registry.lookup import RegistryContext
from services.registry.repo import ModelRow, VersionRow
from tuneforge.registry.v1 import model_pb2


class Search:
    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    async def search(self, parent: str, filter_text: str) -> list[tuple[model_pb2.ModelVersion, str]]:
        project = self.ctx.project_of(parent)
        keys = {"family", "kind", "method", "alias", "min_parameters", "max_parameters"}
        terms = parse_filter(
            filter_text, lambda k: k in keys or bool(re.match(r"^tags\.[a-z][a-z0-9_.\-]*$", k))
        )
        kinds = [k.removeprefix("MODEL_VERSION_KIND_").lower() for k in model_pb2.ModelVersionKind.keys()[1:]]
        for key, value in terms:
            if key.endswith("_parameters") and not value.isdigit():
                raise InvalidArgument.field("filter", f"{key} takes a whole number (got {quote(value)})")
            if key == "kind" and value.lower() not in kinds:
                raise InvalidArgument.field(
                    "filter", f"kind is one of {', '.join(kinds)} (got {quote(value)})"
                )

        def search(session: Session) -> list[tuple[model_pb2.ModelVersion, str]]:
            rows = session.scalars(
                select(VersionRow)
                .join(ModelRow)
                .where(ModelRow.project == project)
                .order_by(VersionRow.create_time.desc())
                .limit(1000)
            ).all()
            aliases = self.ctx.aliases_of(session, [r.uid for r in rows])
            out = []
            for row in rows:
                proto = version_to_proto(row, aliases.get(row.uid, []))
                method = (
                    str(row.hyperparameters.get("method", ""))
                    if row.source_job
                    else ("derived" if (row.catalog or {}).get("derivation") else "base")
                )
                facts = {
                    "family": proto.catalog.family,
                    "kind": model_pb2.ModelVersionKind.Name(proto.kind)
                    .removeprefix("MODEL_VERSION_KIND_")
                    .lower(),
                    "method": method,
                }
                keep = True
                for key, value in terms:
                    if key in facts:
                        keep &= facts[key] == value.lower() if key == "kind" else facts[key] == value
                    elif key == "alias":
                        keep &= value in proto.aliases
                    elif key == "min_parameters":
                        keep &= proto.catalog.parameter_count >= int(value)
                    elif key == "max_parameters":
                        keep &= proto.catalog.parameter_count <= int(value)
                    else:  # a version's own tags, then its model's
                        tag = key.removeprefix("tags.")
                        keep &= proto.tags.get(tag, row.model.tags.get(tag)) == value
                if keep:
                    out.append((proto, method))
            return out

        return await self.ctx.db.run(search)
