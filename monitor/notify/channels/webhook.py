"""Generic JSON webhook: the versioned message itself, optionally HMAC-signed.

Receivers verify `X-Finsent-Signature: v1=<hex>` as HMAC-SHA256 with the shared secret of
`X-Finsent-Timestamp`, a `.` and the raw body, refuse timestamps more than 5 minutes from
their clock (docs/security.md), and drop repeats by `X-Finsent-Notification-Id` (also `notification_id`
in the body): a sender killed between the send and its bookkeeping re-sends once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.notify.channels import Prepared, Verdict
from monitor.notify.channels._json import dumps
from monitor.notify.signing import webhook_signature

DEFAULT_RATE_PER_MINUTE: float | None = None
VERSION = "1"


def render(message: dict[str, Any], title: str, text: str) -> dict[str, Any]:
    return {**message, "version": VERSION, "title": title, "text": text}


def prepare(url: str, secret: str | None, body: dict[str, Any], now: datetime) -> Prepared:
    content = dumps(body)
    timestamp = str(int(now.timestamp()))
    headers = {"X-Finsent-Timestamp": timestamp, "X-Finsent-Version": VERSION}
    if secret:
        headers["X-Finsent-Signature"] = webhook_signature(secret, timestamp, content)
    return Prepared(url, content, headers)


def check(status: int, data: Any) -> Verdict | None:
    return None  # the HTTP status says it all
