"""The lineage graph of a version: its ancestors (base, parent, derivation source) and descendants."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.registry.convert import version_name, version_to_proto
from services.registry.lookup import RegistryContext
from services.registry.repo import VersionRow
from tuneforge.registry.v1 import model_pb2


class Lineage:
    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    async def graph(self, name: str) -> tuple[str, list[model_pb2.LineageNode], list[model_pb2.LineageEdge]]:
        """Ancestors (base, parent, derivation source) and descendants of a version, with edges."""

        def walk(session: Session) -> tuple[str, list[model_pb2.LineageNode], list[model_pb2.LineageEdge]]:
            root = self.ctx.version_by_name(session, name, "name")
            seen: dict[str, VersionRow] = {root.uid: root}
            edges: set[tuple[str, str, str]] = set()
            frontier = [root]
            while frontier:  # ancestors
                row = frontier.pop()
                for relation, source in (("base", row.base_version), ("parent", row.parent_version)):
                    if source is None:
                        continue
                    if relation == "parent" and (row.catalog or {}).get("derivation"):
                        relation = "derived"
                    edges.add((row.uid, source.uid, relation))
                    if source.uid not in seen:
                        seen[source.uid] = source
                        frontier.append(source)
            frontier = [root]
            while frontier:  # descendants
                row = frontier.pop()
                children = session.scalars(
                    select(VersionRow).where(
                        or_(VersionRow.base_version_uid == row.uid, VersionRow.parent_version_uid == row.uid)
                    )
                ).all()
                for child in children:
                    if child.model.project != root.model.project:
                        continue
                    relation = (
                        "base"
                        if child.base_version_uid == row.uid
                        else "derived"
                        if (child.catalog or {}).get("derivation")
                        else "parent"
                    )
                    edges.add((child.uid, row.uid, relation))
                    if child.uid not in seen:
                        seen[child.uid] = child
                        frontier.append(child)
            aliases = self.ctx.aliases_of(session, list(seen))
            nodes = []
            for row in sorted(seen.values(), key=lambda r: r.create_time):
                proto = version_to_proto(row, aliases.get(row.uid, []))
                nodes.append(
                    model_pb2.LineageNode(
                        model_version=proto.name,
                        kind=proto.kind,
                        lineage=proto.lineage,
                        derivation=(row.catalog or {}).get("derivation", ""),
                        aliases=proto.aliases,
                    )
                )
            return (
                version_name(root),
                nodes,
                [
                    model_pb2.LineageEdge(
                        child=version_name(seen[c]), source=version_name(seen[p]), relation=r
                    )
                    for c, p, r in sorted(edges)
                ],
            )

        return await self.ctx.db.run(walk)
