"""Request signatures, as each receiver documents them. Pure: bytes and strings only.

- finsent webhook: `X-Finsent-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}." + raw body)>`
  with `X-Finsent-Timestamp: <unix seconds>`; the timestamp is signed so that a captured
  request cannot be replayed later (receivers refuse requests older than `MAX_AGE_S`).
- Feishu custom bot: `sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))`,
  timestamp in seconds, both sent in the JSON body.
- DingTalk custom robot: `sign = urlencode(base64(HMAC-SHA256(key=secret,
  msg=f"{timestamp}\\n{secret}")))`, timestamp in milliseconds, both appended to the URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

WEBHOOK_SCHEME = "v1"
MAX_AGE_S = 300  # what docs/security.md tells receivers to accept


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{WEBHOOK_SCHEME}={mac}"


def verify_webhook(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float, max_age_s: float = MAX_AGE_S
) -> bool:
    """What a receiver does: the signature matches (constant-time) and the timestamp is
    within `max_age_s` of its own clock, either way (clocks drift)."""
    try:
        age = now - int(timestamp)
    except ValueError:
        return False
    if abs(age) > max_age_s:
        return False
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)


def feishu_sign(secret: str, timestamp: int) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """Already URL-encoded, ready to append as `&sign=`."""
    msg = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())
