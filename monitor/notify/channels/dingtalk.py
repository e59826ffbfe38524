"""DingTalk custom robot: a markdown message; with a secret, `timestamp` (ms) and `sign`
are appended to the URL. DingTalk answers HTTP 200 with `{"errcode": 0}` on success."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.notify.channels import Prepared, Verdict
from monitor.notify.channels._json import dumps
from monitor.notify.signing import dingtalk_sign

DEFAULT_RATE_PER_MINUTE: float | None = 20.0  # DingTalk: 20 messages a minute per robot
# 130101: "send too fast, exceed 20 times per minute"; DingTalk then throttles for 10 minutes.
RATE_LIMIT_CODES = {130101: 600.0, 130102: 600.0}
RETRYABLE_CODES = frozenset({-1})  # "system busy"


def render(message: dict[str, Any], title: str, text: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"title": title, "text": f"#### {title}\n\n{text}"}}


def prepare(url: str, secret: str | None, body: dict[str, Any], now: datetime) -> Prepared:
    if secret:
        ts = int(now.timestamp() * 1000)
        url = f"{url}{'&' if '?' in url else '?'}timestamp={ts}&sign={dingtalk_sign(secret, ts)}"
    return Prepared(url, dumps(body))


def check(status: int, data: Any) -> Verdict | None:
    if not isinstance(data, dict) or "errcode" not in data:
        return None
    try:
        code = int(data["errcode"])
    except (TypeError, ValueError):
        return Verdict(False, False, f"DingTalk replied with errcode {data['errcode']!r}")
    if code == 0:
        return Verdict(True)
    msg = str(data.get("errmsg", ""))[:200]
    if code in RATE_LIMIT_CODES:
        return Verdict(False, True, f"DingTalk error code {code}: {msg}", RATE_LIMIT_CODES[code])
    return Verdict(False, code in RETRYABLE_CODES, f"DingTalk error code {code}: {msg}")
