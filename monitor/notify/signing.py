"""Request signatures, as each receiver documents them. Pure: bytes and strings only.

- finsent webhook: `X-Finsent-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`.
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


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def feishu_sign(secret: str, timestamp: int) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """Already URL-encoded, ready to append as `&sign=`."""
    msg = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())
