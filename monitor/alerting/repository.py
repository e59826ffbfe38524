"""The database edge of an alerting tick: load what the stages need, write what they planned.

All SQL of a tick is here, in three calls on one connection inside one transaction:
`load_snapshot` (after taking the alert lock), `load_facts` (after the lifecycle stage)
and `write`. The stages in `monitor.alerting.stages` never see a connection.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, case, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.alerting.grouping import GroupState
from monitor.alerting.lifecycle import Alert
from monitor.alerting.matchers import Silence, matchers_from_json
from monitor.alerting.message import alert_record, evidence_item
from monitor.alerting.stages import Facts, Needs, Outgoing, Plan, Snapshot
from monitor.detect.signals import Key
from monitor.enrich.novelty import normalize
from monitor.redact import REDACTING_FILTER
from monitor.store.schema import alert_events, alerts, document_entities, documents, notifications, silences, state

log = logging.getLogger(__name__)
log.addFilter(REDACTING_FILTER)

GROUP_STATE_PREFIX = "alertgroup:"
LOCK_NAME = "alerts.lock"
_META = "_alert"  # key inside alerts.numbers holding window_start and topic
DEFAULT_WINDOW = timedelta(minutes=15)

Bind = Engine | Connection


@contextmanager
def tx(bind: Bind) -> Iterator[Connection]:
    """A transaction on an engine, or the caller's (joined, so its commit covers ours)."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    elif bind.in_transaction():
        yield bind
    else:
        with bind.begin():
            yield bind


def insert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# Upserts built once per dialect and run with parameters: the alert stage runs every tick
# an alert is open (thousands of times in a replay), and building a fresh statement for
# each row (and its cache key) cost more than the database did.
_UPSERTS: dict[tuple[str, str, str, tuple[str, ...]], Any] = {}


def _upsert(conn: Connection, table: Any, key: str, update: Sequence[str]) -> Any:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET each of `update` to the inserted value."""
    name = (conn.dialect.name, table.name, key, tuple(update))
    stmt = _UPSERTS.get(name)
    if stmt is None:
        ins = insert(conn, table)
        stmt = ins.on_conflict_do_update(index_elements=[key], set_={c: ins.excluded[c] for c in update})
        _UPSERTS[name] = stmt
    return stmt


def lock(conn: Connection, now: datetime) -> None:
    """Serialize alert evaluation across workers: the upsert takes a row lock (PostgreSQL)
    or the write lock (SQLite) before anything is read. An existing lock row keeps its
    value; only its `updated_at` moves."""
    stmt = _upsert(conn, state, "name", ["updated_at"])
    conn.execute(stmt, {"name": LOCK_NAME, "value": {"at": now.isoformat()}, "updated_at": now})


# --- alert rows --------------------------------------------------------------------------


def row_to_alert(r: Any) -> Alert:
    numbers = dict(r["numbers"] or {})
    meta = numbers.pop(_META, {}) or {}
    ws = meta.get("window_start")
    return Alert(
        id=r["id"],
        fingerprint=r["fingerprint"],
        rule=r["rule"],
        key=Key(r["key_kind"], r["key_value"]),
        state=r["state"],
        started_at=r["started_at"],
        updated_at=r["updated_at"],
        severity=r["severity"],
        fired_at=r["fired_at"],
        resolved_at=r["resolved_at"],
        window_start=datetime.fromisoformat(ws) if ws else None,
        topic=meta.get("topic"),
        summary=r["summary"] or "",
        numbers=numbers,
        acknowledged_by=r["acknowledged_by"],
        acknowledged_at=r["acknowledged_at"],
    )


def _alert_values(a: Alert) -> dict[str, Any]:
    meta = {"window_start": a.window_start.isoformat() if a.window_start else None, "topic": a.topic}
    return {
        "id": a.id,
        "fingerprint": a.fingerprint,
        "rule": a.rule,
        "key_kind": a.key.kind,
        "key_value": a.key.value,
        "severity": a.severity,
        "state": a.state,
        "started_at": a.started_at,
        "fired_at": a.fired_at,
        "resolved_at": a.resolved_at,
        "updated_at": a.updated_at,
        "summary": a.summary,
        "numbers": {**a.numbers, _META: meta},
    }


# What an upsert of an existing alert leaves as it is.
_ALERT_FIXED = ("id", "fingerprint", "rule", "started_at")


def window(a: Alert) -> tuple[datetime, datetime]:
    """[start, end] of the detector window behind the alert's latest numbers."""
    return a.window_start or (a.updated_at - DEFAULT_WINDOW), a.updated_at


def row_to_silence(r: Any) -> Silence:
    return Silence(
        id=r["id"],
        matchers=matchers_from_json(r["matchers"]),
        starts_at=r["starts_at"],
        ends_at=r["ends_at"],
        created_by=r["created_by"],
        comment=r["comment"] or "",
    )


def active_silences(conn: Connection, now: datetime) -> list[Silence]:
    q = select(silences).where(silences.c.starts_at <= now, silences.c.ends_at > now)
    return [row_to_silence(r) for r in conn.execute(q).mappings()]


# --- load ----------------------------------------------------------------------------------


def _latest(conn: Connection, fps: Sequence[str]) -> dict[str, Alert]:
    if not fps:
        return {}
    return {r["fingerprint"]: row_to_alert(r) for r in conn.execute(_LATEST, {"fps": list(fps)}).mappings()}


def _latest_query() -> Any:
    """The latest alert of each of the fingerprints bound to `fps` (built once, like the upserts)."""
    sub = (
        select(alerts.c.fingerprint, func.max(alerts.c.started_at).label("m"))
        .where(alerts.c.fingerprint.in_(bindparam("fps", expanding=True)))
        .group_by(alerts.c.fingerprint)
        .subquery()
    )
    return select(alerts).join(sub, and_(alerts.c.fingerprint == sub.c.fingerprint, alerts.c.started_at == sub.c.m))


_LATEST = _latest_query()


def _group_states(conn: Connection) -> dict[str, GroupState]:
    rows = conn.execute(select(state).where(state.c.name.like(GROUP_STATE_PREFIX + "%"))).mappings().all()
    out: dict[str, GroupState] = {}
    for r in rows:
        try:
            gs = GroupState.from_json(r["value"])
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring unreadable alert group state %s", r["name"])
            continue
        out[gs.group_id] = gs
    return out


def load_snapshot(conn: Connection, fps: Sequence[str], now: datetime, *, with_groups: bool) -> Snapshot:
    """The latest alert of each fingerprint; with channels also the alerts in view (firing,
    or still notified by a group), the group states and the active silences."""
    latest = _latest(conn, fps)
    if not with_groups:
        return Snapshot(latest=latest, alerts={}, groups={}, silences=[])
    groups = _group_states(conn)
    notified = set().union(*(g.notified_firing for g in groups.values())) if groups else set()
    q = select(alerts).where(alerts.c.state == "firing")
    if notified:
        q = select(alerts).where(or_(alerts.c.state == "firing", alerts.c.id.in_(sorted(notified))))
    view = {a.id: a for a in map(row_to_alert, conn.execute(q).mappings())}
    return Snapshot(latest=latest, alerts=view, groups=groups, silences=active_silences(conn, now))


def _toward(de: Any, d: Any) -> Any:
    """The sentiment toward the company of a `document_entities` row (the document's on rows
    stored before per-company sentiment existed)."""
    return func.coalesce(de.sentiment, d.sentiment)


def _dominant_topic(conn: Connection, a: Alert) -> str | None:
    """The most frequent topic of a company's negative documents in the alert's window."""
    d, de = documents.c, document_entities.c
    start, end = window(a)
    q = (
        select(d.topic, func.count().label("k"))
        .select_from(documents.join(document_entities, de.document_id == d.id))
        .where(de.entity == a.key.value, de.published_at >= start, de.published_at <= end)
        .where(_toward(de, d) == "negative", d.topic.is_not(None))
        .group_by(d.topic)
        .order_by(func.count().desc(), d.topic)
        .limit(1)
    )
    row = conn.execute(q).first()
    return row[0] if row else None


def _company_documents(conn: Connection, firing: Sequence[Alert]) -> dict[str, tuple[int, int, list[str]]]:
    """Per firing topic alert: its window's novel documents that mention a firing company
    (count, negatives; a document naming two of them counts once) and the companies with
    negatives among them, most first. The input of `topics_explained_by_entities`."""
    companies = sorted({a.key.value for a in firing if a.key.kind == "entity"})
    if not companies:
        return {}
    d, de = documents.c, document_entities.c
    negative = func.coalesce(func.sum(case((d.sentiment == "negative", 1), else_=0)), 0)
    negative_toward = func.coalesce(func.sum(case((_toward(de, d) == "negative", 1), else_=0)), 0)
    out: dict[str, tuple[int, int, list[str]]] = {}
    for a in firing:
        if a.key.kind != "topic":
            continue
        start, end = window(a)
        in_window = and_(
            d.topic == a.key.value, d.duplicate_of.is_(None), d.published_at >= start, d.published_at <= end
        )
        mentions = select(de.document_id).where(
            de.entity.in_(companies), de.published_at >= start, de.published_at <= end
        )
        docs, negatives = conn.execute(select(func.count(), negative).where(in_window, d.id.in_(mentions))).one()
        per_company = conn.execute(
            select(de.entity, negative_toward)
            .select_from(documents.join(document_entities, de.document_id == d.id))
            .where(in_window, de.entity.in_(companies))
            .group_by(de.entity)
        ).all()
        names = [c for c, k in sorted(per_company, key=lambda r: (-int(r[1]), r[0])) if int(k) > 0]
        out[a.key.value] = (int(docs), int(negatives), names)
    return out


def evidence(conn: Connection, a: Alert, limit: int) -> list[dict[str, Any]]:
    """The most confidently negative distinct stories of the key in the alert's window, each
    with how many copies of it arrived in the window and from which outlets.

    Stories are novel documents; texts that still read the same once normalised (a copy
    the near-duplicate stage missed) are folded into one story."""
    if limit <= 0:
        return []
    start, end = window(a)
    d = documents.c
    if a.key.kind == "entity":
        # A company's evidence is what reads negative toward it, not merely beside it.
        de = document_entities.c
        score: Any = func.coalesce(de.sentiment_score, d.sentiment_score)
        q = (
            select(d.id, d.source, d.published_at, d.title, d.text, d.url, score.label("sentiment_score"))
            .join(document_entities, de.document_id == d.id)
            .where(de.entity == a.key.value, de.published_at >= start, de.published_at <= end)
            .where(_toward(de, d) == "negative")
        )
    else:
        score = d.sentiment_score
        q = select(d.id, d.source, d.published_at, d.title, d.text, d.url, d.sentiment_score).where(
            d.topic == a.key.value, d.sentiment == "negative"
        )
    q = (
        q.where(d.duplicate_of.is_(None), d.published_at >= start, d.published_at <= end)
        .order_by(score.desc(), d.published_at.desc(), d.id)
        .limit(limit * 4)
    )
    stories: dict[str, list[Any]] = {}  # normalised headline -> [first row, ids]
    for r in conn.execute(q).mappings():
        text = normalize(r["title"] or r["text"] or "")
        if text in stories:
            stories[text][1].append((r["id"], r["source"]))
        elif len(stories) < limit:
            stories[text] = [r, [(r["id"], r["source"])]]
    ids = [i for _, group in stories.values() for i, _src in group]
    copies: dict[str, list[str | None]] = {i: [] for i in ids}
    if ids:
        cq = select(d.id, d.duplicate_of, d.source).where(
            d.duplicate_of.in_(ids), d.published_at >= start, d.published_at <= end
        )
        for _cid, orig, src in conn.execute(cq):
            copies[orig].append(src)
    out = []
    for row, group in stories.values():
        srcs = [s for i, _ in group for s in copies[i]] + [src for _, src in group[1:]]
        outlets = sorted({s for s in srcs if s} - {row["source"]})[:5]
        n_copies = len(group) - 1 + sum(len(copies[i]) for i, _ in group)
        out.append(evidence_item(row, copies=n_copies, outlets=outlets))
    return out


def load_facts(conn: Connection, needs: Needs) -> Facts:
    """What the routing stages weigh: dominant topics, companies' documents, evidence."""
    return Facts(
        topics={a.id: _dominant_topic(conn, a) for a in needs.topic_for},
        company_documents=_company_documents(conn, needs.firing) if needs.company_documents else {},
        evidence={a.id: evidence(conn, a, needs.evidence_count) for a in needs.firing} if needs.evidence_count else {},
    )


# --- write ---------------------------------------------------------------------------------


def enqueue(conn: Connection, out: Outgoing, now: datetime) -> bool:
    """Insert one notification row; False if its dedup key was already there."""
    stmt = (
        insert(conn, notifications)
        .values(
            dedup_key=out.dedup_key,
            alert_id=out.alert_id,
            channel=out.channel,
            kind=out.kind,
            payload=out.payload,
            status=out.status,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(notifications.c.id)
    )
    # RETURNING, not rowcount: psycopg2 reports -1 for an INSERT ... ON CONFLICT here.
    return conn.execute(stmt).first() is not None


def write(conn: Connection, plan: Plan, now: datetime, *, events: bool = False) -> list[Outgoing]:
    """Upsert the changed alerts and groups, insert the notifications (and, with `events`,
    the transitions for the alerts topic); returns the notification rows that were really
    new (a replayed tick returns none)."""
    if events:
        rows = [
            {"alert_id": c.alert.id, "kind": c.kind, "payload": alert_record(c), "created_at": now}
            for c in plan.changes
            if c.kind != "updated"
        ]
        if rows:
            conn.execute(alert_events.insert(), rows)
    if plan.alerts:
        rows = [_alert_values(a) for a in plan.alerts]
        conn.execute(_upsert(conn, alerts, "id", [k for k in rows[0] if k not in _ALERT_FIXED]), rows)
    if plan.groups:
        conn.execute(
            _upsert(conn, state, "name", ["value", "updated_at"]),
            [
                {"name": GROUP_STATE_PREFIX + gid, "value": gs.to_json(), "updated_at": now}
                for gid, gs in plan.groups.items()
            ],
        )
    return [out for out in plan.notifications if enqueue(conn, out, now)]
