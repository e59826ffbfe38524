"""Alerts as people look at them: `finsent alerts list`, the dashboard's alert page, acks, counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update

from monitor.alerting.message import alert_view, iso
from monitor.alerting.repository import Bind, evidence, row_to_alert, tx
from monitor.store.schema import alerts, notifications


def acknowledge(bind: Bind, alert_id: str, who: str, now: datetime) -> bool:
    """Mark an alert acknowledged: it stops repeating (resolved messages still go out)."""
    with tx(bind) as conn:
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
    with tx(bind) as conn:
        rows = [row_to_alert(r) for r in conn.execute(q).mappings()]
    out = []
    for a in rows:
        v = alert_view(a)
        out.append(
            {
                "id": a.id,
                "key": a.key.as_dict(),
                "state": a.state,
                "severity": a.severity,
                "started_at": iso(a.started_at),
                "fired_at": iso(a.fired_at),
                "resolved_at": iso(a.resolved_at),
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
    with tx(bind) as conn:
        r = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
        if r is None:
            return None
        a = row_to_alert(r)
        n = notifications.c
        history = [
            {
                "channel": x["channel"],
                "kind": x["kind"],
                "status": x["status"],
                "attempts": x["attempts"],
                "last_error": x["last_error"],
                "created_at": iso(x["created_at"]),
                "sent_at": iso(x["sent_at"]),
                "dedup_key": x["dedup_key"],
            }
            for x in conn.execute(
                select(notifications).where(n.alert_id == alert_id).order_by(n.created_at, n.id)
            ).mappings()
        ]
        docs = evidence(conn, a, 5) if a.fired_at else []
    view = alert_view(a, "", docs)
    view["notifications"] = history
    view["numbers"] = dict(a.numbers)
    return view


def counts_by_status(bind: Bind) -> dict[str, int]:
    """Notifications by status (for `finsent stats`)."""
    with tx(bind) as conn:
        q = select(notifications.c.status, func.count()).group_by(notifications.c.status)
        return {s: int(n) for s, n in conn.execute(q)}
