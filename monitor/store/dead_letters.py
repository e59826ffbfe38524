"""The dead-letter table as `finsent dlq` sees it: select by reason, topic and time; record
the outcome of a re-drive. The re-drive itself (decode, classify, store) is
`monitor.app.dlq`, which uses the same batch pipeline as the daemon."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from monitor.store.schema import dead_letters


@dataclass(frozen=True, slots=True)
class Filter:
    reason: str | None = None  # case-insensitive substring of the reason
    topic: str | None = None
    since: datetime | None = None  # received at or after
    include_replayed: bool = False


def _where(f: Filter) -> Any:
    d = dead_letters.c
    conds = []
    if f.reason:
        conds.append(func.lower(d.reason).contains(f.reason.lower(), autoescape=True))
    if f.topic:
        conds.append(d.topic == f.topic)
    if f.since is not None:
        conds.append(d.received_at >= f.since)
    if not f.include_replayed:
        conds.append(d.replayed_at.is_(None))
    return and_(True, *conds)


def listing(conn: Connection, f: Filter, limit: int = 100) -> list[dict[str, Any]]:
    d = dead_letters.c
    q = (
        select(
            d.id,
            d.received_at,
            d.topic,
            d.partition,
            d.offset,
            d.reason,
            d.record_time,
            d.replayed_at,
            d.replays,
            func.length(d.raw).label("bytes"),
        )
        .where(_where(f))
        .order_by(d.received_at, d.id)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(q).mappings()]


def select_for_replay(conn: Connection, f: Filter, after_id: int, limit: int) -> list[Any]:
    d = dead_letters.c
    q = (
        select(d.id, d.topic, d.partition, d.offset, d.key, d.raw, d.record_time, d.received_at)
        .where(_where(f), d.id > after_id)
        .order_by(d.id)
        .limit(limit)
    )
    return list(conn.execute(q))


def record_outcomes(conn: Connection, stored: Iterable[int], rejected: dict[int, str], now: datetime) -> None:
    """Stored rows get `replayed_at`; rows rejected again get the new reason. Both count a replay."""
    d = dead_letters.c
    ids = list(stored)
    if ids:
        conn.execute(update(dead_letters).where(d.id.in_(ids)).values(replayed_at=now, replays=d.replays + 1))
    for i, reason in rejected.items():
        conn.execute(update(dead_letters).where(d.id == i).values(reason=reason[:2000], replays=d.replays + 1))
