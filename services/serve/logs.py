"""Call logs (调用日志), feedback on them, and the statistics (调用统计) that follow from them.

Every call is a row (id, time, status, tokens, latency), its payload (messages, answer, parameters)
kept in the row until the compactor moves an hour's payloads into one Parquet object under
`calls/{deployment}/{date}/{hour}/`; a payload is read from wherever it is.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.kit.auth import parse_in_project
from services.kit.db import Database, keyset_page
from services.kit.errors import InvalidArgument, NotFound
from services.kit.names import PageTokens, check_text, page_size, parse_filter
from services.kit.outbox import Outbox
from services.kit.store import ObjectStore
from services.kit.times import as_utc, to_timestamp, utcnow
from services.serve.convert import CALL, DEPLOYMENT, RATINGS, call_to_proto, deployment_name
from services.serve.repo import CallRow, DeploymentRow, FeedbackRow
from tuneforge.events.v1 import serve_events_pb2
from tuneforge.serve.v1 import deployment_pb2

MAX_TAGS = 16
FILTER_KEYS = ("rating", "has_correction", "tag", "status")


def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 3)


def hourly(rows: list[CallRow]) -> tuple[list[deployment_pb2.HourlyStats], deployment_pb2.HourlyStats]:
    """Stats per hour (and over all rows): requests, errors by code, tokens, latency percentiles."""

    def stats(start: datetime | None, group: list[CallRow]) -> deployment_pb2.HourlyStats:
        ok = [r for r in group if r.status == "OK"]
        latency = [r.latency_ms for r in ok]
        ttft = [r.ttft_ms for r in ok if r.ttft_ms is not None]
        out = deployment_pb2.HourlyStats(
            requests=len(group),
            errors=dict(Counter(r.status for r in group if r.status != "OK")),
            prompt_tokens=sum(r.prompt_tokens for r in group),
            completion_tokens=sum(r.completion_tokens for r in group),
            latency_ms_p50=quantile(latency, 0.5),
            latency_ms_p95=quantile(latency, 0.95),
            latency_ms_p99=quantile(latency, 0.99),
            time_to_first_token_ms_p50=quantile(ttft, 0.5),
            time_to_first_token_ms_p95=quantile(ttft, 0.95),
            time_to_first_token_ms_p99=quantile(ttft, 0.99),
        )
        if start is not None:
            out.start_time.CopyFrom(to_timestamp(start))
        return out

    hours: dict[datetime, list[CallRow]] = defaultdict(list)
    for row in rows:
        hours[as_utc(row.time).replace(minute=0, second=0, microsecond=0)].append(row)
    return [stats(start, hours[start]) for start in sorted(hours)], stats(None, rows)


class CallLogs:
    def __init__(self, db: Database, store: ObjectStore, outbox: Outbox, page_tokens: PageTokens) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.page_tokens = page_tokens
        self._parts: dict[str, dict[str, dict[str, Any]]] = {}

    def find_deployment(self, session: Session, name: str, field: str) -> DeploymentRow:
        parts = parse_in_project(DEPLOYMENT, name, field)
        row = session.scalar(
            select(DeploymentRow).where(
                DeploymentRow.project == parts["project"], DeploymentRow.deployment_id == parts["deployment"]
            )
        )
        if row is None:
            raise NotFound(f"deployment {name} does not exist")
        return row

    async def payload(self, row: CallRow) -> dict[str, Any] | None:
        """A call's messages, answer and parameters (from the row, or from its Parquet part)."""
        if row.payload is not None or not row.part:
            return row.payload
        if row.part not in self._parts:
            import pyarrow.parquet as pq

            data = await self.store.get_bytes(row.part)
            table = await asyncio.to_thread(lambda: pq.read_table(io.BytesIO(data)).to_pylist())
            self._parts[row.part] = {r["id"]: json.loads(r["payload"]) for r in table}
            while len(self._parts) > 16:
                self._parts.pop(next(iter(self._parts)))
        return self._parts[row.part].get(row.id)

    async def stats(
        self, name: str, start: datetime | None, end: datetime | None
    ) -> deployment_pb2.DeploymentStats:
        end = end or utcnow()
        start = start or end - timedelta(hours=24)
        if start >= end:
            raise InvalidArgument.field("start_time", "must be before end_time")

        def read(session: Session) -> tuple[str, list[CallRow]]:
            deployment = self.find_deployment(session, name, "name")
            rows = session.scalars(
                select(CallRow).where(
                    CallRow.deployment_uid == deployment.uid, CallRow.time >= start, CallRow.time < end
                )
            ).all()
            for row in rows:
                session.expunge(row)
            return deployment_name(deployment), list(rows)

        deployment, rows = await self.db.run(read)
        hours, total = hourly(rows)
        return deployment_pb2.DeploymentStats(deployment=deployment, hours=hours, total=total)

    async def list(
        self, parent: str, size: int, token: str, filter_text: str
    ) -> tuple[list[deployment_pb2.CallLog], str]:
        size = page_size(size)
        terms = parse_filter(filter_text, lambda k: k in FILTER_KEYS)
        for key, value in terms:
            if key == "rating" and value not in ("up", "down"):
                raise InvalidArgument.field("filter", "rating is up or down")
            if key == "has_correction" and value not in ("true", "false"):
                raise InvalidArgument.field("filter", "has_correction is true or false")
            if key == "status" and not (
                value.isupper() and value.replace("_", "").isalpha() and len(value) <= 40
            ):
                raise InvalidArgument.field(
                    "filter", "status is a gRPC-style code such as OK or INVALID_ARGUMENT"
                )

        def read(session: Session) -> tuple[DeploymentRow, list[tuple[CallRow, FeedbackRow | None]], str]:
            deployment = self.find_deployment(session, parent, "parent")
            query = (
                select(CallRow)
                .outerjoin(FeedbackRow, FeedbackRow.call_id == CallRow.id)
                .where(CallRow.deployment_uid == deployment.uid)
            )
            for key, value in terms:
                if key == "rating":
                    query = query.where(FeedbackRow.rating == value)
                elif key == "has_correction":
                    query = query.where(
                        (FeedbackRow.correction != "")
                        if value == "true"
                        else (FeedbackRow.correction.is_(None) | (FeedbackRow.correction == ""))
                    )
                elif key == "status":
                    query = query.where(CallRow.status == value)
            rows, next_token = keyset_page(
                session,
                query,
                tokens=self.page_tokens,
                columns={"time": CallRow.time},
                order_by="time desc",
                default_order="time",
                tie=CallRow.id,
                size=size,
                token=token,
                context=f"ListCallLogs|{parent}|{filter_text}",
            )
            tags = [v for k, v in terms if k == "tag"]
            out = []
            for row in rows:
                feedback = session.get(FeedbackRow, row.id)
                if tags and (feedback is None or not set(tags) <= set(feedback.tags or [])):
                    continue
                session.expunge(row)
                if feedback is not None:
                    session.expunge(feedback)
                out.append((row, feedback))
            session.expunge(deployment)
            return deployment, out, next_token

        deployment, rows, next_token = await self.db.run(read)
        return [call_to_proto(deployment, r, await self.payload(r), f) for r, f in rows], next_token

    async def feedback(self, name: str, given: deployment_pb2.Feedback) -> deployment_pb2.CallLog:
        parts = parse_in_project(CALL, name, "name")
        rating = RATINGS.get(given.rating, "") if given.rating else ""
        if given.rating and not rating:
            raise InvalidArgument.field("feedback.rating", "is RATING_UP or RATING_DOWN")
        check_text(given.correction, "feedback.correction", 32_000)
        check_text(given.comment, "feedback.comment", 4000)
        if len(given.tags) > MAX_TAGS or any(not t or len(t) > 64 for t in given.tags):
            raise InvalidArgument.field("feedback.tags", f"at most {MAX_TAGS} tags of 1-64 characters")
        if not (rating or given.correction or given.comment or given.tags):
            raise InvalidArgument.field("feedback", "give a rating, a correction, a comment or tags")

        def record(session: Session) -> tuple[DeploymentRow, CallRow, FeedbackRow]:
            deployment = self.find_deployment(
                session, f"projects/{parts['project']}/deployments/{parts['deployment']}", "name"
            )
            call = session.get(CallRow, parts["call"])
            if call is None or call.deployment_uid != deployment.uid:
                raise NotFound(f"call {name} does not exist (was logging off for it?)")
            row = session.get(FeedbackRow, call.id) or FeedbackRow(call_id=call.id)
            row.rating, row.correction, row.comment = rating, given.correction, given.comment
            row.tags, row.time = list(given.tags), utcnow()
            session.add(row)
            session.flush()
            proto = call_to_proto(deployment, call, call.payload, row)
            self.outbox.emit(
                session,
                "call",
                "feedback",
                proto.name,
                deployment.project,
                serve_events_pb2.CallFeedbackEvent(call_log=proto),
            )
            session.expunge_all()
            return deployment, call, row

        deployment, call, row = await self.outbox.write(self.db, record)
        return call_to_proto(deployment, call, await self.payload(call), row)

    async def compact(self, older_than: timedelta) -> int:
        """Move the payloads of hours older than `older_than` into Parquet parts; returns calls moved."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        cutoff = (utcnow() - older_than).replace(minute=0, second=0, microsecond=0)
        rows = await self.db.run(
            lambda s: [
                (r.id, r.deployment_uid, as_utc(r.time), r.payload)
                for r in s.scalars(
                    select(CallRow).where(CallRow.time < cutoff, CallRow.payload.is_not(None)).limit(5000)
                )
            ]
        )
        groups: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for call_id, deployment_uid, time, payload in rows:
            groups[(deployment_uid, time.strftime("%Y-%m-%d/%H"))].append((call_id, payload))
        for (deployment_uid, hour), calls in groups.items():
            key = f"calls/{deployment_uid}/{hour}/part-{uuid.uuid4().hex}.parquet"
            table = pa.table(
                {
                    "id": [c for c, _ in calls],
                    "payload": [json.dumps(p, ensure_ascii=False) for _, p in calls],
                }
            )
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="zstd")
            await self.store.put_bytes(key, buffer.getvalue())
            ids = [c for c, _ in calls]
            await self.db.run(
                lambda s, ids=ids, key=key: s.execute(
                    update(CallRow).where(CallRow.id.in_(ids)).values(payload=None, part=key)
                )
            )
        return len(rows)

    async def delete_parts(self, deployment_uid: str) -> None:
        await self.store.delete_prefix(f"calls/{deployment_uid}/")
