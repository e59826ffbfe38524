"""Microsoft Teams via a Workflows (Power Automate) webhook: an Adaptive Card in the
`message` envelope with `attachments`. Workflows answers 202 Accepted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.notify.channels import Prepared, Verdict
from monitor.notify.channels._json import dumps

DEFAULT_RATE_PER_MINUTE: float | None = 60.0


def render(message: dict[str, Any], title: str, text: str) -> dict[str, Any]:
    firing = message.get("status") == "firing"
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": title,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": "Attention" if firing else "Good" if message.get("status") == "resolved" else "Default",
        },
    ]
    body += [{"type": "TextBlock", "text": para, "wrap": True} for para in text.split("\n\n") if para.strip()]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    }
    if message.get("dashboard_url"):
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in dashboard", "url": message["dashboard_url"]}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def prepare(url: str, secret: str | None, body: dict[str, Any], now: datetime) -> Prepared:
    return Prepared(url, dumps(body))


def check(status: int, data: Any) -> Verdict | None:
    return None
