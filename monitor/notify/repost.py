"""Keep finsent's firing alerts alive in Alertmanager.

Alertmanager treats an alert as resolved once its `endsAt` passes, so a client re-posts
what is still firing (Prometheus does it every evaluation). The outbox delivers each
state change once (firing, then resolved); this job re-posts, every
`alerting.alertmanager_repost_seconds`, the last body each `alertmanager` channel was sent
for every alert that is still firing, with a fresh `endsAt`. An alert that resolved stops
being re-posted; its resolved notification (or, with `send_resolved = false`, the lapse of
its `endsAt`) ends it in Alertmanager.

Several daemons may share the database: a per-channel row in `state` is claimed with a
conditional update, so one of them re-posts per interval and the same state is never
posted twice within it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from monitor.config import Settings
from monitor.notify.channels import alertmanager
from monitor.notify.delivery import SendResult, deliver
from monitor.store.schema import alerts, notifications, state

log = logging.getLogger(__name__)

_CLAIM = "alertmanager.repost.{}"


def _claim(engine: Engine, channel: str, now: datetime, interval: float) -> bool:
    """Take this interval's re-post for `channel`; False if another daemon already did."""
    name = _CLAIM.format(channel)[:128]
    # A little slack, so a scheduler that fires a moment early still takes its turn.
    due_before = now - timedelta(seconds=interval * 0.9)
    with engine.begin() as conn:
        res = conn.execute(
            update(state)
            .where(and_(state.c.name == name, state.c.updated_at <= due_before))
            .values(value={"at": now.isoformat()}, updated_at=now)
        )
        if res.rowcount:
            return True
        if conn.execute(select(state.c.name).where(state.c.name == name)).first():
            return False
        try:
            with conn.begin_nested():
                conn.execute(insert(state).values(name=name, value={"at": now.isoformat()}, updated_at=now))
        except IntegrityError:
            return False
    return True


def _sent_rows(engine: Engine, channel: str, lookback: timedelta, now: datetime) -> list[Any]:
    """The payloads of `channel`'s sent firing/resolved notifications within `lookback`,
    oldest first."""
    with engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                select(notifications.c.payload)
                .where(
                    notifications.c.channel == channel,
                    notifications.c.status == "sent",
                    notifications.c.kind.in_(("firing", "resolved")),
                    notifications.c.created_at >= now - lookback,
                )
                .order_by(notifications.c.id)
            )
        ]


def _entries(payload: Any) -> list[tuple[str, dict[str, Any]]]:
    """(alert id, Alertmanager entry) for each alert a stored notification carried."""
    message = (payload or {}).get("message") or {}
    body = (payload or {}).get("body") or {}
    return [
        (str(view.get("id")), entry)
        for view, entry in zip(message.get("alerts") or [], body.get("alerts") or [], strict=False)
    ]


def first_labels(
    engine: Engine, channel: str, lookback: timedelta, now: datetime, rows: list[Any] | None = None
) -> dict[str, dict[str, str]]:
    """For each alert sent to `channel` within `lookback`, the labels of its first post:
    its identity in Alertmanager, kept for every later post about it."""
    first: dict[str, dict[str, str]] = {}
    for payload in _sent_rows(engine, channel, lookback, now) if rows is None else rows:
        for alert_id, entry in _entries(payload):
            if alert_id not in first and entry.get("labels"):
                first[alert_id] = entry["labels"]
    return first


def pinned_body(engine: Engine, channel: str, payload: dict[str, Any], lookback: timedelta, now: datetime) -> Any:
    """The body of an outbox row about to be sent to an `alertmanager` channel, with the
    labels of the alerts' first posts (`alertmanager.pin_labels`)."""
    body = payload.get("body")
    if not isinstance(body, dict):
        return body
    first = first_labels(engine, channel, lookback, now)
    return alertmanager.pin_labels(body, payload.get("message") or {}, first) if first else body


def firing_bodies(engine: Engine, channel: str, lookback: timedelta, now: datetime) -> list[dict[str, Any]]:
    """For each alert still firing, the Alertmanager entry last sent for it to `channel`.

    Entries come from sent outbox rows (newest last wins), so the annotations re-posted are
    exactly what was delivered, under the labels of the alert's first post; an alert whose
    latest sent state is not firing, or that is no longer firing in the alerts table, is
    left out.
    """
    with engine.connect() as conn:
        firing = {r[0] for r in conn.execute(select(alerts.c.id).where(alerts.c.state == "firing"))}
    if not firing:
        return []
    rows = _sent_rows(engine, channel, lookback, now)
    first = first_labels(engine, channel, lookback, now, rows)
    latest: dict[str, dict[str, Any]] = {}
    for payload in rows:
        for alert_id, entry in _entries(payload):
            latest[alert_id] = {**entry, "labels": first.get(alert_id, entry.get("labels"))}
    return [
        entry
        for alert_id, entry in latest.items()
        if alert_id in firing and entry.get(alertmanager.STATE_KEY) == "firing"
    ]


def lookback_for(settings: Settings) -> timedelta:
    """How far back the sent rows are read: repeats refresh the outbox at least every
    repeat interval, so past two of them (and at least a day)."""
    return timedelta(seconds=max(2 * settings.alerting.repeat_interval_seconds, 86_400.0))


def repost_firing(
    engine: Engine, settings: Settings, now: datetime, *, client: httpx.Client | None = None
) -> dict[str, SendResult]:
    """Re-post every still-firing alert to each `alertmanager` channel whose turn it is.

    Returns the result per channel posted to (channels skipped this interval are absent).
    """
    interval = settings.alerting.alertmanager_repost_seconds
    lookback = lookback_for(settings)
    results: dict[str, SendResult] = {}
    for ch in settings.channels:
        if ch.type != "alertmanager":
            continue
        entries = firing_bodies(engine, ch.name, lookback, now)
        if not entries or not _claim(engine, ch.name, now, interval):
            continue
        result = deliver(ch, {"alerts": entries}, f"repost:{ch.name}:{int(now.timestamp())}", client=client, now=now)
        results[ch.name] = result
        if result.ok:
            log.debug("re-posted %d firing alert(s) to Alertmanager channel %s", len(entries), ch.name)
        else:
            log.warning("re-posting firing alerts to Alertmanager channel %s failed: %s", ch.name, result.error)
    return results
