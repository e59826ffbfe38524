"""Prometheus Alertmanager, API v2: finsent alerts posted to `<url>/api/v2/alerts`.

A team then routes finsent through its own receivers, silences, inhibition and HA.
Each finsent alert becomes one Alertmanager alert:

- labels (its identity in Alertmanager): `alertname="FinsentNegativeSurge"`, `kind`
  (`topic` or `entity`), `key` (the topic or symbol), `topic` (an entity alert's dominant
  topic, when known), `severity`;
- annotations: `summary`, `numbers` (the window against the baseline), `dashboard` (the
  deep link), `evidence` (top headlines), `description` (the markdown text);
- `startsAt` (when it fired), `generatorURL` (the deep link);
- `endsAt`: for a firing alert, the send time plus `FIRING_HOLD`, so Alertmanager resolves
  it by itself if finsent stops re-posting (the re-post job, `monitor.notify.repost`,
  keeps it alive meanwhile); for a resolved alert, when it resolved.

Alertmanager identifies an alert by its label set, and finsent's severity can change
while an alert is open (a surge that grows from warning to critical). Every later post for
an alert (updates, re-posts, its resolution) therefore carries the labels of the first
post sent for it to that channel (`pin_labels`, applied by the sender and the re-post
job); otherwise the resolution would resolve a new, different alert and leave the first
one listed as active.

`endsAt` is filled in by `prepare`, at send time, because a stored body may wait in the
outbox (group wait, retries). An optional `secret` is sent as a bearer token, for an
Alertmanager behind an authenticating proxy.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.notify.channels import Prepared, Verdict
from monitor.notify.channels._json import dumps

DEFAULT_RATE_PER_MINUTE: float | None = None
ALERTNAME = "FinsentNegativeSurge"
API_PATH = "/api/v2/alerts"
# A firing alert's endsAt lies this far after each post; re-posts come far more often
# (`[alerting] alertmanager_repost_seconds`, at most a third of it).
FIRING_HOLD = timedelta(minutes=15)
STATE_KEY = "x_finsent_state"  # kept in the stored body for `prepare`, never sent
RESOLVED_KEY = "x_finsent_resolved_at"


def _pct(v: Any) -> str:
    return f"{v:.0%}" if isinstance(v, int | float) else "?"


def numbers_text(view: dict[str, Any]) -> str:
    cur, base = view.get("current") or {}, view.get("baseline") or {}
    window = (view.get("window") or {}).get("minutes")
    parts = [
        f"{cur.get('negative', '?')} of {cur.get('total', '?')} negative ({_pct(cur.get('share'))})"
        + (f" in {window} min" if window else ""),
        f"baseline {_pct(base.get('share'))}",
    ]
    if isinstance(view.get("lift"), int | float):
        parts.append(f"lift {view['lift']:.1f}x")
    if isinstance(view.get("p_value"), int | float):
        parts.append(f"p={view['p_value']:.2g}")
    return ", ".join(parts)


def evidence_text(view: dict[str, Any], top: int = 5) -> str:
    lines = []
    for e in (view.get("evidence") or [])[:top]:
        line = f"- {e.get('headline') or ''}"
        if e.get("source"):
            line += f" ({e['source']})"
        if e.get("url"):
            line += f" {e['url']}"
        lines.append(line)
    return "\n".join(lines)


def labels_for(view: dict[str, Any]) -> dict[str, str]:
    key = view.get("key") or {}
    labels = {
        "alertname": ALERTNAME,
        "kind": str(key.get("kind", "")),
        "key": str(key.get("value", "")),
        "severity": str(view.get("severity") or "warning"),
    }
    if view.get("topic"):
        labels["topic"] = str(view["topic"])
    return {k: v for k, v in labels.items() if v}  # Alertmanager treats an empty label as absent


def _alert(view: dict[str, Any], description: str) -> dict[str, Any]:
    annotations = {
        "summary": str(view.get("summary") or view.get("subject") or ""),
        "numbers": numbers_text(view),
        "dashboard": str(view.get("dashboard_url") or ""),
        "evidence": evidence_text(view),
        "description": description,
    }
    out: dict[str, Any] = {
        "labels": labels_for(view),
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": view.get("fired_at") or view.get("started_at"),
        STATE_KEY: view.get("state"),
        RESOLVED_KEY: view.get("resolved_at"),
    }
    if view.get("dashboard_url"):
        out["generatorURL"] = view["dashboard_url"]
    return out


def render(message: dict[str, Any], title: str, text: str) -> dict[str, Any]:
    alerts = [_alert(v, text) for v in message.get("alerts") or []]
    if message.get("kind") == "test":  # `finsent channels test`: a short-lived alert of its own
        alerts.append(
            {
                "labels": {"alertname": "FinsentChannelTest", "channel": str(message.get("channel", ""))},
                "annotations": {"summary": "finsent channel test"},
                "startsAt": message.get("created_at"),
                STATE_KEY: "test",
                RESOLVED_KEY: None,
            }
        )
    return {"alerts": alerts}


def to_send(body: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The alerts as Alertmanager takes them, with `endsAt` as of `now`."""
    out = []
    for a in body.get("alerts") or []:
        alert = {k: v for k, v in a.items() if k not in (STATE_KEY, RESOLVED_KEY)}
        state = a.get(STATE_KEY)
        if state == "resolved":
            # When it resolved, even long ago (a replay): an explicit endsAt in the past
            # resolves the alert in Alertmanager whatever the endsAt of the firing post was.
            resolved = a.get(RESOLVED_KEY)
            at = datetime.fromisoformat(resolved) if resolved else now
            alert["endsAt"] = at.astimezone(UTC).isoformat()
        elif state == "test":
            alert["endsAt"] = (now + timedelta(minutes=1)).astimezone(UTC).isoformat()
        else:
            alert["endsAt"] = (now + FIRING_HOLD).astimezone(UTC).isoformat()
        out.append(alert)
    return out


def pin_labels(body: dict[str, Any], message: dict[str, Any], first: dict[str, dict[str, str]]) -> dict[str, Any]:
    """`body` with each alert's labels replaced by `first[alert id]` where known.

    `message` is the finsent message the body was rendered from; its `alerts` line up with
    the body's (a channel test's extra entry has none and is left alone)."""
    views = message.get("alerts") or []
    out = []
    for i, entry in enumerate(body.get("alerts") or []):
        labels = first.get(str(views[i].get("id"))) if i < len(views) else None
        out.append({**entry, "labels": dict(labels)} if labels else entry)
    return {**body, "alerts": out}


def api_url(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


def prepare(url: str, secret: str | None, body: dict[str, Any], now: datetime) -> Prepared:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return Prepared(api_url(url), dumps(to_send(body, now)), headers)


def check(status: int, data: Any) -> Verdict | None:
    return None  # Alertmanager answers 200 or an error status (400 names the bad field)
