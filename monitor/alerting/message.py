"""What a notification says: alerts as channel-independent message data (webhook body v1).

Pure: alerts, their evidence and the clock in; plain dicts out. Channel templates
(`monitor.notify.render`) turn a message into each chat's body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.alerting.grouping import Flush
from monitor.alerting.lifecycle import Alert, Change

HEADLINE_CHARS = 200


def iso(x: datetime | None) -> str | None:
    return x.astimezone(UTC).isoformat() if x else None


def _first(numbers: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        if numbers.get(n) is not None:
            return numbers[n]
    return None


def alert_view(
    a: Alert, dashboard_url: str = "", evidence: list[dict[str, Any]] | None = None, name: str | None = None
) -> dict[str, Any]:
    """An alert as message data. Figures are read from the detector's `numbers` under
    these names (first present wins): negative|window_negative, total|window_total,
    share|window_share, baseline_share|baseline, baseline_negative, baseline_total,
    lift, p_value|pvalue|p, corrected_alpha|alpha|threshold, window_minutes
    (monitor/detect/spike.py's `to_signals` writes these)."""
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
    base = dashboard_url.rstrip("/")
    stories, copies = _first(n, "stories"), _first(n, "copies")
    expected = _first(n, "expected_stories")
    return {
        "id": a.id,
        "state": a.state,
        "rule": a.rule,
        "severity": a.severity,
        "key": a.key.as_dict(),
        "subject": f"{'topic' if a.key.kind == 'topic' else 'company'} {a.key.value}",
        "name": name if a.key.kind == "entity" and name and name != a.key.value else None,
        "topic": a.topic,
        "summary": a.summary,
        "started_at": iso(a.started_at),
        "fired_at": iso(a.fired_at),
        "resolved_at": iso(a.resolved_at),
        "window": {"start": iso(a.window_start), "end": iso(end), "minutes": minutes},
        "current": {"negative": neg, "total": tot, "share": share},
        "baseline": {
            "share": _first(n, "baseline_share", "baseline"),
            "negative": _first(n, "baseline_negative"),
            "total": _first(n, "baseline_total"),
        },
        "lift": _first(n, "lift"),
        "lift_text": lift_text(_first(n, "lift"), n),
        "spread": {
            "stories": stories,
            "copies": copies,
            "negative_stories": _first(n, "negative_stories"),
            "negative_copies": _first(n, "negative_copies"),
        },
        "volume": {
            "stories": stories,
            "expected": expected,
            "ratio": _first(n, "volume_ratio"),
        },
        "p_value": _first(n, "p_value", "pvalue", "p"),
        "alpha": _first(n, "corrected_alpha", "alpha", "threshold"),
        "acknowledged_by": a.acknowledged_by,
        "evidence": evidence or [],
        "dashboard_url": f"{base}/Alerts?alert={a.id}" if base else None,
    }


def lift_text(lift: Any, numbers: Mapping[str, Any]) -> str | None:
    """The lift as people read it: "3.1x", or "from 0 of 131" against a zero baseline
    (a ratio to a baseline of nothing is not a number anyone can use)."""
    base_neg, base_tot = numbers.get("baseline_negative"), numbers.get("baseline_total")
    if base_neg == 0 and isinstance(base_tot, int | float):
        return f"from 0 of {int(base_tot):,}"
    if isinstance(lift, int | float) and lift > 0:
        return f"{lift:.1f}x"
    return None


def evidence_item(row: Any, copies: int = 0, outlets: list[str] | None = None) -> dict[str, Any]:
    """One evidence story as a message shows it: a one-line headline, a link only if it is
    http(s), how many copies of it were seen and in which outlets."""
    headline = (row["title"] or row["text"] or "").strip().replace("\n", " ")
    url = row["url"]
    return {
        "id": row["id"],
        "source": row["source"],
        "published_at": iso(row["published_at"]),
        "headline": headline[:HEADLINE_CHARS] + ("…" if len(headline) > HEADLINE_CHARS else ""),
        "url": url if url and str(url).startswith(("http://", "https://")) else None,
        "negative_score": row["sentiment_score"],
        "copies": int(copies),
        "outlets": list(outlets or []),
    }


def build_message(
    flush: Flush,
    dashboard_url: str,
    evidence: Mapping[str, list[dict[str, Any]]],
    now: datetime,
    names: Callable[[str], str | None] | None = None,
) -> dict[str, Any]:
    """The channel-independent message (the webhook body, version 1); `names` gives a
    company's display name (for messages that show it, such as the Chinese ones)."""
    views = [
        alert_view(a, dashboard_url, evidence.get(a.id), names(a.key.value) if names else None)
        for a in (*flush.firing, *flush.resolved)
    ]
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
        "created_at": iso(now),
        "dashboard_url": views[0]["dashboard_url"] if views else dashboard_url,
        "alerts": views,
    }


def silenced_message(alert_id: str, reasons: list[str]) -> dict[str, Any]:
    """The audit row's content for an alert muted at the moment it fires (never sent)."""
    return {"version": "1", "kind": "silenced", "alert_id": alert_id, "reasons": reasons}


def digest_message(
    key: str,
    channel: str,
    dashboard_url: str,
    since: datetime,
    now: datetime,
    fired: int,
    topics: list[dict[str, Any]],
    entities: list[dict[str, Any]],
) -> dict[str, Any]:
    """The daily digest: top negative topics and companies over the day, alerts fired."""
    return {
        "version": "1",
        "notification_id": key,
        "kind": "digest",
        "status": "digest",
        "repeat": False,
        "channel": channel,
        "created_at": iso(now),
        "dashboard_url": dashboard_url,
        "alerts": [],
        "digest": {
            "date": now.astimezone(UTC).date().isoformat(),
            "since": iso(since),
            "until": iso(now),
            "alerts_fired": int(fired),
            "topics": topics,
            "entities": entities,
        },
    }


def alert_record(change: Change) -> dict[str, Any]:
    """One alert transition as the alerts topic (`finsent.alerts`) carries it."""
    a = change.alert
    return {
        "id": a.id,
        "change": change.kind,
        "state": a.state,
        "rule": a.rule,
        "key": a.key.as_dict(),
        "severity": a.severity,
        "topic": a.topic,
        "summary": a.summary,
        "started_at": iso(a.started_at),
        "fired_at": iso(a.fired_at),
        "resolved_at": iso(a.resolved_at),
        "updated_at": iso(a.updated_at),
        "numbers": dict(a.numbers),
    }
