"""Feishu / Lark custom bot: an interactive card; with a secret, `timestamp` (seconds) and
`sign` go in the body. Feishu answers HTTP 200 with `{"code": 0}` on success and a
non-zero `code` on failure (older deployments: `StatusCode`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.notify.channels import Prepared, Verdict
from monitor.notify.channels._json import dumps
from monitor.notify.signing import feishu_sign

DEFAULT_RATE_PER_MINUTE: float | None = 100.0  # Feishu: 100/min and 5/s per bot
# Rate limits (11232 tenant frequency limit, 230020 per-chat limit) and internal errors (2200).
RETRYABLE_CODES = frozenset({11232, 230020, 2200})


def render(message: dict[str, Any], title: str, text: str) -> dict[str, Any]:
    status = message.get("status")
    elements: list[dict[str, Any]] = [{"tag": "div", "text": {"tag": "lark_md", "content": text}}]
    if message.get("dashboard_url"):
        elements.append(
            {
                "tag": "action",
                "actions": [
                    {
                        "tag": "button",
                        "text": {"tag": "plain_text", "content": "Open in dashboard"},
                        "url": message["dashboard_url"],
                        "type": "primary",
                    }
                ],
            }
        )
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": title},
                "template": "red" if status == "firing" else "green" if status == "resolved" else "blue",
            },
            "elements": elements,
        },
    }


def prepare(url: str, secret: str | None, body: dict[str, Any], now: datetime) -> Prepared:
    if secret:
        ts = int(now.timestamp())
        body = {"timestamp": str(ts), "sign": feishu_sign(secret, ts), **body}
    return Prepared(url, dumps(body))


def check(status: int, data: Any) -> Verdict | None:
    if not isinstance(data, dict):
        return None
    code = data.get("code", data.get("StatusCode"))
    if code is None:
        return None
    try:
        code = int(code)
    except (TypeError, ValueError):
        return Verdict(False, False, f"Feishu replied with code {code!r}")
    if code == 0:
        return Verdict(True)
    msg = str(data.get("msg", data.get("StatusMessage", "")))[:200]
    return Verdict(False, code in RETRYABLE_CODES, f"Feishu error code {code}: {msg}")
