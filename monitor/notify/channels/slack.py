"""Slack incoming webhook with Block Kit. Slack answers 200 `ok` or an error status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.notify.channels import Prepared, Verdict
from monitor.notify.channels._json import dumps

DEFAULT_RATE_PER_MINUTE: float | None = 60.0  # Slack: about one message per second per webhook


def render(message: dict[str, Any], title: str, text: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": False}},
    ]
    # A section's text is capped at 3000 characters; split long bodies over several.
    chunks = [text[i : i + 2900] for i in range(0, len(text), 2900)] or [""]
    for chunk in chunks[:10]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
    url = message.get("dashboard_url")
    if url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open in dashboard"}, "url": url}
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"finsent · `{message.get('notification_id', '')}`"}],
        }
    )
    return {"text": title, "blocks": blocks}


def prepare(url: str, secret: str | None, body: dict[str, Any], now: datetime) -> Prepared:
    return Prepared(url, dumps(body))


def check(status: int, data: Any) -> Verdict | None:
    return None
