"""Retention: a batched purge that keeps what baselines and the long views need.

Run by the daemon's scheduler (every `retention.interval_minutes`, any worker; the work
is split into short transactions of `retention.batch_rows` rows, so it never holds locks
for long and several daemons running it at once do not double anything):

- minute counts older than `minute_counts_days` move into hourly roll-ups (leaving the
  exact hourly sums of `hour_counts`, which cover only the minutes kept), and hourly
  roll-ups older than `hourly_rollups_days` into daily ones. A move is one statement
  pair in one transaction: `DELETE ... RETURNING` the rows, then add them to the coarser
  rows. A row deleted by one worker is not returned to another, so every count lands in
  exactly one place and `series` (minutes + hours + days) stays exact;
- documents (with their entities, by cascade) older than `documents_days`;
- notifications that are done (sent, failed, silenced) older than `notifications_days`,
  with their attempts (cascade), and alert events as old (published ones; unpublished
  ones too, as a replay without the results topic leaves them);
- dead letters older than `dead_letters_days`; resolved alerts older than
  `resolved_alerts_days`, and idle alert-group states as old;
- entity sightings idle for `entity_sightings_days`.

Event-time tables age against the stream's newest minute (`watermark`), wall-time tables
(notifications, dead letters, alerts) against `now`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, tuple_, union_all

from monitor.config import RetentionSettings
from monitor.store.repository import add_counts, add_hour_counts, epoch_hour, hour_totals
from monitor.store.schema import (
    alert_events,
    alerts,
    count_rollups,
    dead_letters,
    documents,
    entity_sightings,
    hour_counts,
    minute_counts,
    notifications,
    state,
)

log = logging.getLogger(__name__)

COUNTS = ("total", "negative", "neutral", "positive", "novel_total", "novel_negative")
GROUP_STATE_PREFIX = "alertgroup:"  # the alerting repository's group-state rows


@dataclass
class PurgeStats:
    minutes_rolled_up: int = 0
    hours_rolled_up: int = 0
    documents: int = 0
    notifications: int = 0
    alert_events: int = 0
    dead_letters: int = 0
    alerts: int = 0
    group_states: int = 0
    sightings: int = 0
    batches: list[int] = field(default_factory=list)  # rows per transaction, for the figures

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["batches"] = len(self.batches)
        return d


def _floor(ts: datetime, grain: str) -> datetime:
    ts = ts.astimezone(UTC)
    return (
        ts.replace(minute=0, second=0, microsecond=0)
        if grain == "hour"
        else ts.replace(hour=0, minute=0, second=0, microsecond=0)
    )


def _add_rollups(conn: Connection, grain: str, rows: Sequence[Any]) -> None:
    acc: dict[tuple[str, str, datetime], list[int]] = defaultdict(lambda: [0] * len(COUNTS))
    for r in rows:
        k = (r.key_kind, r.key_value, _floor(r.at, grain))
        vals = acc[k]
        for i, c in enumerate(COUNTS):
            vals[i] += int(getattr(r, c) or 0)
    add_counts(
        conn,
        count_rollups,
        ["grain", "key_kind", "key_value", "bucket"],
        [
            {"grain": grain, "key_kind": k, "key_value": v, "bucket": b, **dict(zip(COUNTS, vals, strict=True))}
            for (k, v, b), vals in sorted(acc.items())
        ],
    )


def _move_minutes(engine: Engine, before: datetime, batch: int, stats: PurgeStats) -> None:
    mc = minute_counts.c
    while True:
        with engine.begin() as conn:
            victims = select(mc.key_kind, mc.key_value, mc.minute).where(mc.minute < before).limit(batch)
            rows = conn.execute(
                delete(minute_counts)
                .where(tuple_(mc.key_kind, mc.key_value, mc.minute).in_(victims))
                .returning(mc.key_kind, mc.key_value, mc.minute.label("at"), *[getattr(mc, c) for c in COUNTS])
            ).all()
            _add_rollups(conn, "hour", rows)
            # The moved minutes leave the exact hourly sums too (one transaction with the move).
            add_hour_counts(conn, hour_totals((r.key_kind, r.key_value, r.at, r._mapping) for r in rows), sign=-1)
            hc = hour_counts.c
            conn.execute(delete(hour_counts).where(hc.hour < epoch_hour(before), hc.total <= 0, hc.novel_total <= 0))
        if not rows:
            return
        stats.minutes_rolled_up += len(rows)
        stats.batches.append(len(rows))


def _move_hours(engine: Engine, before: datetime, batch: int, stats: PurgeStats) -> None:
    r = count_rollups.c
    while True:
        with engine.begin() as conn:
            victims = (
                select(r.grain, r.key_kind, r.key_value, r.bucket)
                .where(r.grain == "hour", r.bucket < before)
                .limit(batch)
            )
            rows = conn.execute(
                delete(count_rollups)
                .where(tuple_(r.grain, r.key_kind, r.key_value, r.bucket).in_(victims))
                .returning(r.key_kind, r.key_value, r.bucket.label("at"), *[getattr(r, c) for c in COUNTS])
            ).all()
            _add_rollups(conn, "day", rows)
        if not rows:
            return
        stats.hours_rolled_up += len(rows)
        stats.batches.append(len(rows))


def _delete_batched(engine: Engine, table: Any, pk: Any, cond: Any, batch: int, stats: PurgeStats) -> int:
    total = 0
    while True:
        with engine.begin() as conn:
            ids = select(pk).where(cond).limit(batch)
            n = conn.execute(delete(table).where(pk.in_(ids))).rowcount or 0
        if not n:
            return total
        total += n
        stats.batches.append(n)


def watermark(conn: Connection) -> datetime | None:
    """The stream's newest minute (event time), from the feed-wide counts."""
    mc = minute_counts.c
    at = conn.execute(select(func.max(mc.minute)).where(mc.key_kind == "all", mc.key_value == "*")).scalar()
    return at.astimezone(UTC) if at is not None else None


def purge(engine: Engine, r: RetentionSettings, now: datetime) -> PurgeStats:
    """One purge pass. `now` is the wall clock (live) or the replay's clock."""
    stats = PurgeStats()
    with engine.connect() as conn:
        mark = watermark(conn) or now
    days = timedelta(days=1)
    if r.minute_counts_days:
        # Whole hours only, so an hour's roll-up is never split between two passes' clocks.
        _move_minutes(engine, _floor(mark - r.minute_counts_days * days, "hour"), r.batch_rows, stats)
    if r.hourly_rollups_days:
        _move_hours(engine, _floor(mark - r.hourly_rollups_days * days, "day"), r.batch_rows, stats)
    if r.documents_days:
        stats.documents = _delete_batched(
            engine,
            documents,
            documents.c.id,
            documents.c.published_at < mark - r.documents_days * days,
            r.batch_rows,
            stats,
        )
    if r.notifications_days:
        n = notifications.c
        stats.notifications = _delete_batched(
            engine,
            notifications,
            n.id,
            (n.status != "pending") & (n.created_at < now - r.notifications_days * days),
            r.batch_rows,
            stats,
        )
        ev = alert_events.c
        stats.alert_events = _delete_batched(
            engine, alert_events, ev.id, ev.created_at < now - r.notifications_days * days, r.batch_rows, stats
        )
    if r.dead_letters_days:
        d = dead_letters.c
        stats.dead_letters = _delete_batched(
            engine, dead_letters, d.id, d.received_at < now - r.dead_letters_days * days, r.batch_rows, stats
        )
    if r.resolved_alerts_days:
        a = alerts.c
        old = now - r.resolved_alerts_days * days
        stats.alerts = _delete_batched(
            engine, alerts, a.id, (a.state == "resolved") & (a.resolved_at < old), r.batch_rows, stats
        )
        stats.group_states = _purge_group_states(engine, old)
    s = entity_sightings.c
    stats.sightings = _delete_batched(
        engine, entity_sightings, s.symbol, s.last_seen < mark - r.entity_sightings_days * days, r.batch_rows, stats
    )
    return stats


def _purge_group_states(engine: Engine, before: datetime) -> int:
    """Alert-group states with nothing firing and nothing waiting, untouched since `before`."""
    gone = 0
    with engine.begin() as conn:
        rows = conn.execute(
            select(state.c.name, state.c.value).where(
                state.c.name.like(GROUP_STATE_PREFIX + "%"), state.c.updated_at < before
            )
        ).all()
        idle = [
            name
            for name, value in rows
            if isinstance(value, dict) and not value.get("notified_firing") and not value.get("waiting_since")
        ]
        for i in range(0, len(idle), 500):
            gone += conn.execute(delete(state).where(state.c.name.in_(idle[i : i + 500]))).rowcount or 0
    return gone


def counts_source() -> Any:
    """Every count exactly once: minute rows, hourly and daily roll-ups, as one selectable
    with columns key_kind, key_value, at and the count columns (for long views)."""
    mc, r = minute_counts.c, count_rollups.c
    return union_all(
        select(mc.key_kind, mc.key_value, mc.minute.label("at"), *[getattr(mc, c) for c in COUNTS]),
        select(r.key_kind, r.key_value, r.bucket.label("at"), *[getattr(r, c) for c in COUNTS]),
    ).subquery("counts")
