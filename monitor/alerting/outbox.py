"""The database edge of alerting: alert rows, the notification outbox, silences, acks.

`apply_signals` runs the pure stages of `monitor.alerting.lifecycle` and `monitor.alerting.routing` against the
database in ONE transaction: the alert changes and the notification rows they cause
commit together or not at all (the transactional outbox). Replays are harmless: alert ids
come from the stream, signals older than a fingerprint's last applied one are ignored,
group state lives in the `state` table, and every notification has a deterministic
`dedup_key` inserted with ON CONFLICT DO NOTHING.

`notify=False` (a replay without --notify) still writes the notification rows, complete,
with status `suppressed`: the backtest shows exactly what would have been sent and when,
and the sender never picks them up. Alerts muted by a silence or inhibition at the moment
they fire get one `silenced` row per routed channel (an audit trail, never sent).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.alerting.lifecycle import (
    RULE,
    Alert,
    Change,
    Flush,
    GroupState,
    GroupTiming,
    evaluate,
    fingerprint,
    plan_groups,
)
from monitor.config import Settings
from monitor.store.schema import alerts, document_entities, documents, minute_counts, notifications, silences, state
from monitor.notify.delivery import render_body
from monitor.redact import REDACTING_FILTER
from monitor.alerting.routing import (
    Matcher,
    Silence,
    matchers_from_json,
    mute_reasons,
    parse_matcher,
    route_channels,
    topics_explained_by_entities,
)
from monitor.detect.signals import Key, Signal

log = logging.getLogger(__name__)
log.addFilter(REDACTING_FILTER)

GROUP_STATE_PREFIX = "alertgroup:"
LOCK_NAME = "alerts.lock"
_META = "_alert"  # key inside alerts.numbers holding window_start and topic

Bind = Engine | Connection


@dataclass
class ApplyResult:
    changes: list[Change] = field(default_factory=list)
    enqueued: list[str] = field(default_factory=list)  # dedup keys of new notification rows
    silenced: int = 0

    @property
    def transitions(self) -> list[tuple[str, str]]:
        return [(c.kind, c.alert.id) for c in self.changes if c.kind != "updated"]


@contextmanager
def _tx(bind: Bind) -> Iterator[Connection]:
    """A transaction on an engine, or the caller's (joined, so its commit covers ours)."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    elif bind.in_transaction():
        yield bind
    else:
        with bind.begin():
            yield bind


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _lock(conn: Connection, now: datetime) -> None:
    """Serialize alert evaluation across workers: the upsert takes a row lock (PostgreSQL)
    or the write lock (SQLite) before anything is read."""
    stmt = _insert(conn, state).values(name=LOCK_NAME, value={"at": now.isoformat()}, updated_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"updated_at": now}))


# --- alert rows --------------------------------------------------------------------------


def _row_to_alert(r: Any) -> Alert:
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


def _load_latest(conn: Connection, fps: Sequence[str]) -> dict[str, Alert]:
    if not fps:
        return {}
    sub = (
        select(alerts.c.fingerprint, func.max(alerts.c.started_at).label("m"))
        .where(alerts.c.fingerprint.in_(fps))
        .group_by(alerts.c.fingerprint)
        .subquery()
    )
    q = select(alerts).join(sub, and_(alerts.c.fingerprint == sub.c.fingerprint, alerts.c.started_at == sub.c.m))
    return {r["fingerprint"]: _row_to_alert(r) for r in conn.execute(q).mappings()}


def _window(a: Alert) -> tuple[datetime, datetime]:
    """[start, end] of the detector window behind the alert's latest numbers."""
    return a.window_start or (a.updated_at - timedelta(minutes=15)), a.updated_at


def _dominant_topic(conn: Connection, a: Alert) -> str | None:
    """The most frequent topic of an entity's negative documents in the alert's window."""
    d, de = documents.c, document_entities.c
    start, end = _window(a)
    q = (
        select(d.topic, func.count().label("k"))
        .select_from(documents.join(document_entities, de.document_id == d.id))
        .where(de.entity == a.key.value, de.published_at >= start, de.published_at <= end)
        .where(d.sentiment == "negative", d.topic.is_not(None))
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
    out: dict[str, tuple[int, int, list[str]]] = {}
    for a in firing:
        if a.key.kind != "topic":
            continue
        start, end = _window(a)
        in_window = and_(
            d.topic == a.key.value, d.duplicate_of.is_(None), d.published_at >= start, d.published_at <= end
        )
        mentions = select(de.document_id).where(
            de.entity.in_(companies), de.published_at >= start, de.published_at <= end
        )
        docs, negatives = conn.execute(select(func.count(), negative).where(in_window, d.id.in_(mentions))).one()
        per_company = conn.execute(
            select(de.entity, negative)
            .select_from(documents.join(document_entities, de.document_id == d.id))
            .where(in_window, de.entity.in_(companies))
            .group_by(de.entity)
        ).all()
        names = [c for c, k in sorted(per_company, key=lambda r: (-int(r[1]), r[0])) if int(k) > 0]
        out[a.key.value] = (int(docs), int(negatives), names)
    return out


def _with_entity_topics(conn: Connection, changes: list[Change]) -> list[Change]:
    """Fill the topic of new entity alerts when the detector did not set one, so topic
    routes and `inhibit_entity_by_topic` work for entity alerts too."""
    topics: dict[str, str | None] = {}
    out = []
    for c in changes:
        a = c.alert
        if a.key.kind == "entity" and a.topic is None and c.kind in ("pending", "fired"):
            if a.id not in topics:
                topics[a.id] = _dominant_topic(conn, a)
            c = Change(c.kind, replace(a, topic=topics[a.id]), c.before)
        elif a.key.kind == "entity" and a.topic is None and topics.get(a.id):
            c = Change(c.kind, replace(a, topic=topics[a.id]), c.before)
        out.append(c)
    return out


def _write_alerts(conn: Connection, changes: Sequence[Change]) -> None:
    final: dict[str, Alert] = {}
    for c in changes:
        final[c.alert.id] = c.alert
    for a in final.values():
        vals = _alert_values(a)
        upd = {k: v for k, v in vals.items() if k not in ("id", "fingerprint", "rule", "started_at")}
        conn.execute(_insert(conn, alerts).values(**vals).on_conflict_do_update(index_elements=["id"], set_=upd))


# --- silences ----------------------------------------------------------------------------


def _row_to_silence(r: Any) -> Silence:
    return Silence(
        id=r["id"],
        matchers=matchers_from_json(r["matchers"]),
        starts_at=r["starts_at"],
        ends_at=r["ends_at"],
        created_by=r["created_by"],
        comment=r["comment"] or "",
    )


def _active_silences(conn: Connection, now: datetime) -> list[Silence]:
    q = select(silences).where(silences.c.starts_at <= now, silences.c.ends_at > now)
    return [_row_to_silence(r) for r in conn.execute(q).mappings()]


def add_silence(
    bind: Bind,
    matchers: Sequence[Matcher | str],
    *,
    now: datetime,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
    starts_at: datetime | None = None,
    created_by: str = "finsent",
    comment: str = "",
) -> Silence:
    """Create a silence; `matchers` as Matcher or text (`key_value=AAPL`, `topic=~Earn.*`)."""
    ms = tuple(m if isinstance(m, Matcher) else parse_matcher(m) for m in matchers)
    if not ms:
        raise ValueError("a silence needs at least one matcher, e.g. key_value=AAPL")
    start = starts_at or now
    end = ends_at or (start + duration if duration is not None else None)
    if end is None:
        raise ValueError("a silence needs an end: give ends_at or duration")
    if end <= start:
        raise ValueError(f"a silence must end after it starts ({start.isoformat()} >= {end.isoformat()})")
    s = Silence(uuid.uuid4().hex, ms, start, end, created_by, comment)
    with _tx(bind) as conn:
        conn.execute(
            silences.insert().values(
                id=s.id,
                matchers=[m.as_dict() for m in ms],
                starts_at=start,
                ends_at=end,
                created_by=created_by,
                comment=comment,
                created_at=now,
            )
        )
    log.info("silence %s added by %s until %s: %s", s.id, created_by, end.isoformat(), ", ".join(map(str, ms)))
    return s


def list_silences(bind: Bind, now: datetime, *, include_expired: bool = False) -> list[Silence]:
    """Active and future silences (and expired ones when asked), soonest ending first."""
    q = select(silences).order_by(silences.c.ends_at, silences.c.id)
    if not include_expired:
        q = q.where(silences.c.ends_at > now)
    with _tx(bind) as conn:
        return [_row_to_silence(r) for r in conn.execute(q).mappings()]


def expire_silence(bind: Bind, silence_id: str, now: datetime) -> bool:
    """End a silence now. False if there is no such silence or it has already ended."""
    with _tx(bind) as conn:
        res = conn.execute(
            update(silences).where(silences.c.id == silence_id, silences.c.ends_at > now).values(ends_at=now)
        )
    return bool(res.rowcount)


# --- acknowledge / list --------------------------------------------------------------------


def acknowledge(bind: Bind, alert_id: str, who: str, now: datetime) -> bool:
    """Mark an alert acknowledged: it stops repeating (resolved messages still go out)."""
    with _tx(bind) as conn:
        res = conn.execute(
            update(alerts)
            .where(alerts.c.id == alert_id, alerts.c.acknowledged_at.is_(None))
            .values(acknowledged_by=who, acknowledged_at=now)
        )
    return bool(res.rowcount)


def list_alerts(
    bind: Bind,
    *,
    state: str | None = None,
    limit: int = 100,
    include_unfired: bool = False,
) -> list[dict[str, Any]]:
    """Alerts newest first, as the contract's `finsent alerts list` shows them.

    Pending alerts whose spike did not hold are kept (state `resolved`, `fired_at` null)
    as the replay watermark; they are left out unless `include_unfired`.
    """
    q = select(alerts).order_by(alerts.c.started_at.desc(), alerts.c.id).limit(limit)
    if state:
        q = q.where(alerts.c.state == state)
    if not include_unfired:
        q = q.where(or_(alerts.c.fired_at.is_not(None), alerts.c.state == "pending"))
    with _tx(bind) as conn:
        rows = [_row_to_alert(r) for r in conn.execute(q).mappings()]
    out = []
    for a in rows:
        v = _alert_view(a, None)
        out.append(
            {
                "id": a.id,
                "key": a.key.as_dict(),
                "state": a.state,
                "severity": a.severity,
                "started_at": _t(a.started_at),
                "fired_at": _t(a.fired_at),
                "resolved_at": _t(a.resolved_at),
                "summary": a.summary,
                "negative": v["current"]["negative"],
                "total": v["current"]["total"],
                "share": v["current"]["share"],
                "baseline_share": v["baseline"]["share"],
                "p_value": v["p_value"],
                "topic": a.topic,
                "acknowledged_by": a.acknowledged_by,
                "numbers": dict(a.numbers),
            }
        )
    return out


def get_alert(bind: Bind, alert_id: str) -> dict[str, Any] | None:
    """One alert with its notification history (for the dashboard's `/Alerts?alert=<id>`)."""
    with _tx(bind) as conn:
        r = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
        if r is None:
            return None
        a = _row_to_alert(r)
        n = notifications.c
        history = [
            {
                "channel": x["channel"],
                "kind": x["kind"],
                "status": x["status"],
                "attempts": x["attempts"],
                "last_error": x["last_error"],
                "created_at": _t(x["created_at"]),
                "sent_at": _t(x["sent_at"]),
                "dedup_key": x["dedup_key"],
            }
            for x in conn.execute(
                select(notifications).where(n.alert_id == alert_id).order_by(n.created_at, n.id)
            ).mappings()
        ]
        evidence = _evidence(conn, a, 5) if a.fired_at else []
    view = _alert_view(a, None, evidence)
    view["notifications"] = history
    view["numbers"] = dict(a.numbers)
    return view


# --- message content -----------------------------------------------------------------------


def _t(x: datetime | None) -> str | None:
    return x.astimezone(UTC).isoformat() if x else None


def _first(numbers: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        if numbers.get(n) is not None:
            return numbers[n]
    return None


def _alert_view(a: Alert, settings: Settings | None, evidence: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An alert as message data. Figures are read from the detector's `numbers` under
    these names (first present wins): negative|window_negative, total|window_total,
    share|window_share, baseline_share|baseline, baseline_negative, baseline_total,
    lift, p_value|pvalue|p, corrected_alpha|alpha|threshold, window_minutes
    (monitor/spike.py's `to_signals` writes these)."""
    n = a.numbers
    neg = _first(n, "negative", "window_negative")
    tot = _first(n, "total", "window_total")
    share = _first(n, "share", "window_share")
    if share is None and isinstance(neg, int | float) and isinstance(tot, int | float) and tot:
        share = neg / tot
    end = a.updated_at if a.state != "resolved" else (a.fired_at or a.updated_at)
    minutes = _first(n, "window_minutes")
    if minutes is None and a.window_start:
        minutes = round((end - a.window_start).total_seconds() / 60)
    base = settings.dashboard_url.rstrip("/") if settings else ""
    return {
        "id": a.id,
        "state": a.state,
        "rule": a.rule,
        "severity": a.severity,
        "key": a.key.as_dict(),
        "subject": f"{'topic' if a.key.kind == 'topic' else 'company'} {a.key.value}",
        "topic": a.topic,
        "summary": a.summary,
        "started_at": _t(a.started_at),
        "fired_at": _t(a.fired_at),
        "resolved_at": _t(a.resolved_at),
        "window": {"start": _t(a.window_start), "end": _t(end), "minutes": minutes},
        "current": {"negative": neg, "total": tot, "share": share},
        "baseline": {
            "share": _first(n, "baseline_share", "baseline"),
            "negative": _first(n, "baseline_negative"),
            "total": _first(n, "baseline_total"),
        },
        "lift": _first(n, "lift"),
        "p_value": _first(n, "p_value", "pvalue", "p"),
        "alpha": _first(n, "corrected_alpha", "alpha", "threshold"),
        "acknowledged_by": a.acknowledged_by,
        "evidence": evidence or [],
        "dashboard_url": f"{base}/Alerts?alert={a.id}" if base else None,
    }


def _evidence(conn: Connection, a: Alert, limit: int) -> list[dict[str, Any]]:
    """The most confidently negative novel documents of the key in the alert's window."""
    if limit <= 0:
        return []
    start, end = _window(a)
    d = documents.c
    q = select(d.id, d.source, d.published_at, d.title, d.text, d.url, d.sentiment_score)
    if a.key.kind == "entity":
        de = document_entities.c
        q = q.join(document_entities, de.document_id == d.id).where(
            de.entity == a.key.value, de.published_at >= start, de.published_at <= end
        )
    else:
        q = q.where(d.topic == a.key.value)
    q = (
        q.where(d.sentiment == "negative", d.duplicate_of.is_(None), d.published_at >= start, d.published_at <= end)
        .order_by(d.sentiment_score.desc(), d.published_at.desc(), d.id)
        .limit(limit)
    )
    out = []
    for r in conn.execute(q).mappings():
        headline = (r["title"] or r["text"] or "").strip().replace("\n", " ")
        out.append(
            {
                "id": r["id"],
                "source": r["source"],
                "published_at": _t(r["published_at"]),
                "headline": headline[:200] + ("…" if len(headline) > 200 else ""),
                "url": r["url"] if r["url"] and str(r["url"]).startswith(("http://", "https://")) else None,
                "negative_score": r["sentiment_score"],
            }
        )
    return out


def build_message(
    flush: Flush, settings: Settings, evidence: Mapping[str, list[dict[str, Any]]], now: datetime
) -> dict[str, Any]:
    """The channel-independent message (the webhook body, version 1)."""
    views = [_alert_view(a, settings, evidence.get(a.id)) for a in (*flush.firing, *flush.resolved)]
    labels = dict(flush.labels)
    return {
        "version": "1",
        "notification_id": flush.dedup_key,
        "kind": flush.kind,
        "status": flush.kind,
        "repeat": flush.repeat,
        "channel": flush.channel,
        "group": {"id": flush.group_id, "labels": labels, "seq": flush.seq},
        "group_text": ", ".join(f"{k}={v}" for k, v in labels.items()),
        "firing_count": len(flush.firing),
        "resolved_count": len(flush.resolved),
        "created_at": _t(now),
        "dashboard_url": views[0]["dashboard_url"] if views else settings.dashboard_url,
        "alerts": views,
    }


def _payload(settings: Settings, channel: str, message: dict[str, Any]) -> dict[str, Any]:
    ch = next(c for c in settings.channels if c.name == channel)
    return {"message": message, "body": render_body(ch.type, message)}


def _enqueue(
    conn: Connection,
    *,
    dedup_key: str,
    channel: str,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    alert_id: str | None,
    status: str = "pending",
) -> bool:
    stmt = (
        _insert(conn, notifications)
        .values(
            dedup_key=dedup_key,
            alert_id=alert_id,
            channel=channel,
            kind=kind,
            payload=payload,
            status=status,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(notifications.c.id)
    )
    # RETURNING, not rowcount: psycopg2 reports -1 for an INSERT ... ON CONFLICT here.
    return conn.execute(stmt).first() is not None


# --- the stage runner ------------------------------------------------------------------------


def apply_signals(
    bind: Bind,
    settings: Settings,
    signals: Iterable[Signal],
    now: datetime,
    notify: bool = True,
) -> ApplyResult:
    """Apply one detector tick (or several) and enqueue the notifications it causes.

    `now` is the detector clock (wall clock live, stream watermark in a replay); alert
    times come from the signals. Call it every tick, even with no signals: group waits,
    group intervals and repeats are flushed on the clock.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware UTC")
    sigs = list(signals)
    result = ApplyResult()
    with _tx(bind) as conn:
        _lock(conn, now)
        fps = sorted({fingerprint(RULE, s.key) for s in sigs})
        latest = _load_latest(conn, fps)
        changes, _ = evaluate(latest, sigs, pending_minutes=settings.detect.pending_minutes)
        changes = _with_entity_topics(conn, changes)
        _write_alerts(conn, changes)
        result.changes = changes
        if changes:
            log.debug(
                "alert transitions: %s",
                [(c.kind, c.alert.key.value, c.alert.id) for c in changes if c.kind != "updated"],
            )
        _flush(conn, settings, now, notify, changes, result)
    for key in result.enqueued:
        log.info("notification %s enqueued%s", key, "" if notify else " (suppressed: notify is off)")
    return result


def _flush(
    conn: Connection, settings: Settings, now: datetime, notify: bool, changes: Sequence[Change], result: ApplyResult
) -> None:
    if not settings.channels:
        return
    timing = GroupTiming.from_settings(settings.alerting)
    names = [c.name for c in settings.channels]
    st_rows = conn.execute(select(state).where(state.c.name.like(GROUP_STATE_PREFIX + "%"))).mappings().all()
    states: dict[str, GroupState] = {}
    for r in st_rows:
        try:
            gs = GroupState.from_json(r["value"])
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring unreadable alert group state %s", r["name"])
            continue
        states[gs.group_id] = gs
    notified = set().union(*(g.notified_firing for g in states.values())) if states else set()

    q = select(alerts).where(alerts.c.state == "firing")
    if notified:
        q = select(alerts).where(or_(alerts.c.state == "firing", alerts.c.id.in_(sorted(notified))))
    candidates = [_row_to_alert(r) for r in conn.execute(q).mappings()]
    firing = [a for a in candidates if a.state == "firing"]
    explained = (
        topics_explained_by_entities(
            [(a.labels(), a.numbers) for a in firing],
            _company_documents(conn, firing),
            settings.alerting.inhibit_topic_share,
        )
        if settings.alerting.inhibit_topic_by_entity
        else {}
    )
    # A topic alert muted as the echo of its companies' alerts does not in turn mute them.
    firing_topics = {a.key.value for a in firing if a.key.kind == "topic"} - explained.keys()
    active = _active_silences(conn, now)

    members: list[tuple[str, Alert]] = []
    for a in candidates:
        labels = a.labels()
        if mute_reasons(
            labels,
            active,
            now,
            firing_topics=firing_topics,
            inhibit_entity_by_topic=settings.alerting.inhibit_entity_by_topic,
            explained_topics=explained,
        ):
            continue
        members.extend((ch, a) for ch in route_channels(labels, settings.routes, names))

    # Audit rows for alerts muted at the moment they fire.
    for c in changes:
        if c.kind != "fired":
            continue
        labels = c.alert.labels()
        reasons = mute_reasons(
            labels,
            active,
            now,
            firing_topics=firing_topics,
            inhibit_entity_by_topic=settings.alerting.inhibit_entity_by_topic,
            explained_topics=explained,
        )
        if not reasons:
            continue
        for ch in route_channels(labels, settings.routes, names):
            payload = {"message": {"version": "1", "kind": "silenced", "alert_id": c.alert.id, "reasons": reasons}}
            if _enqueue(
                conn,
                dedup_key=f"{c.alert.id}:silenced:{ch}"[:200],
                channel=ch,
                kind="firing",
                payload=payload,
                now=now,
                alert_id=c.alert.id,
                status="silenced",
            ):
                result.silenced += 1

    flushes, new_states = plan_groups(states, members, now, timing)
    for gid, gs in new_states.items():
        if states.get(gid) == gs:
            continue
        name = GROUP_STATE_PREFIX + gid
        stmt = _insert(conn, state).values(name=name, value=gs.to_json(), updated_at=now)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["name"], set_={"value": gs.to_json(), "updated_at": now})
        )

    evidence: dict[str, list[dict[str, Any]]] = {}
    for f in flushes:
        for a in f.firing:
            if a.id not in evidence:
                evidence[a.id] = _evidence(conn, a, settings.alerting.evidence_count)
        message = build_message(f, settings, evidence, now)
        if _enqueue(
            conn,
            dedup_key=f.dedup_key,
            channel=f.channel,
            kind=f.kind,
            payload=_payload(settings, f.channel, message),
            now=now,
            alert_id=f.lead.id,
            status="pending" if notify else "suppressed",
        ):
            result.enqueued.append(f.dedup_key)


# --- digest ----------------------------------------------------------------------------------


def digest(bind: Bind, settings: Settings, now: datetime, *, top: int = 5, notify: bool = True) -> str | None:
    """Enqueue the daily digest (top negative topics and companies over the last 24 h) to
    `alerting.digest_channel`. One per UTC day: running it twice enqueues nothing new.
    Returns the dedup key when a row was written, None otherwise."""
    ch_name = settings.alerting.digest_channel
    if not ch_name:
        return None
    if ch_name not in {c.name for c in settings.channels}:
        raise ValueError(f"alerting.digest_channel {ch_name!r} is not a configured channel")
    since = now - timedelta(hours=24)
    mc = minute_counts.c
    with _tx(bind) as conn:
        rows: dict[str, list[dict[str, Any]]] = {"topic": [], "entity": []}
        for kind in rows:
            neg, tot = func.sum(mc.negative).label("neg"), func.sum(mc.total).label("tot")
            q = (
                select(mc.key_value, neg, tot)
                .where(mc.key_kind == kind, mc.minute >= since, mc.minute < now)
                .group_by(mc.key_value)
                .order_by(neg.desc(), tot.desc(), mc.key_value)
                .limit(top)
            )
            for r in conn.execute(q):
                n, t = int(r.neg or 0), int(r.tot or 0)
                if n:
                    rows[kind].append({"value": r.key_value, "negative": n, "total": t, "share": n / t if t else None})
        fired = conn.execute(
            select(func.count()).select_from(alerts).where(alerts.c.fired_at >= since, alerts.c.fired_at < now)
        ).scalar_one()
        day = now.astimezone(UTC).date().isoformat()
        key = f"digest:{day}:{ch_name}"
        message = {
            "version": "1",
            "notification_id": key,
            "kind": "digest",
            "status": "digest",
            "repeat": False,
            "channel": ch_name,
            "created_at": _t(now),
            "dashboard_url": settings.dashboard_url,
            "alerts": [],
            "digest": {
                "date": day,
                "since": _t(since),
                "until": _t(now),
                "alerts_fired": int(fired),
                "topics": rows["topic"],
                "entities": rows["entity"],
            },
        }
        ok = _enqueue(
            conn,
            dedup_key=key,
            channel=ch_name,
            kind="digest",
            payload=_payload(settings, ch_name, message),
            now=now,
            alert_id=None,
            status="pending" if notify else "suppressed",
        )
    return key if ok else None


def counts_by_status(bind: Bind) -> dict[str, int]:
    """Notifications by status (for `finsent stats`)."""
    with _tx(bind) as conn:
        q = select(notifications.c.status, func.count()).group_by(notifications.c.status)
        return {s: int(n) for s, n in conn.execute(q)}


__all__ = [
    "ApplyResult",
    "acknowledge",
    "add_silence",
    "apply_signals",
    "build_message",
    "counts_by_status",
    "digest",
    "expire_silence",
    "get_alert",
    "list_alerts",
    "list_silences",
]
