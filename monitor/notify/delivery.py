"""Notifiers: sign a rendered body, POST it to its channel, and say how it went.

`deliver` never raises for delivery problems and never lets a secret out: its result's
`error` is redacted, httpx's own log lines go through the redacting filter, and exceptions
are reduced to their type and a redacted message. Whether a failure is worth retrying is
decided here (Alertmanager's rule): timeouts, connection errors, 5xx and 429 (honouring
Retry-After) yes; other 4xx no; a 200 whose body carries a vendor error code is a failure,
retryable when the code is a rate limit.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from monitor import __version__
from monitor.config import Channel
from monitor.notify.channels import module_for
from monitor.notify.render import render_body
from monitor.redact import REDACTING_FILTER, install_log_redaction, redact

log = logging.getLogger(__name__)
log.addFilter(REDACTING_FILTER)
install_log_redaction()

IDEMPOTENCY_HEADER = "X-Finsent-Notification-Id"
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    retryable: bool
    status_code: int | None = None
    error: str | None = None  # always redacted
    retry_after: float | None = None  # seconds the receiver asked us to wait

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- delivery ----------------------------------------------------------------------------


def channel_secrets(channel: Channel) -> list[str]:
    return [s.get_secret_value() for s in (channel.url, channel.secret) if s is not None]


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, min(float(value), MAX_RETRY_AFTER_SECONDS))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, min((when - now).total_seconds(), MAX_RETRY_AFTER_SECONDS))


def deliver(
    channel: Channel,
    body: dict[str, Any],
    notification_id: str,
    *,
    client: httpx.Client | None = None,
    now: datetime | None = None,
) -> SendResult:
    """Sign and POST `body` to the channel once. Never raises for delivery problems."""
    now = now or datetime.now(UTC)
    secrets = channel_secrets(channel)
    try:
        mod = module_for(channel.type)
        assert channel.url is not None
        prep = mod.prepare(
            channel.url.get_secret_value(),
            channel.secret.get_secret_value() if channel.secret else None,
            body,
            now,
        )
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"finsent/{__version__}",
            IDEMPOTENCY_HEADER: notification_id,
            **prep.headers,
        }
    except Exception as exc:  # a bad body or channel: not fixed by retrying
        return SendResult(
            False, False, None, f"could not prepare request: {type(exc).__name__}: {redact(exc, secrets)}"
        )

    try:
        if client is not None:  # injected (tests' mock transports, a caller's own pool)
            resp = client.post(
                prep.url,
                content=prep.content,
                headers=headers,
                timeout=channel.timeout_seconds,
                follow_redirects=False,
            )
        else:
            resp = asyncio.run(_post_within(prep.url, prep.content, headers, channel.timeout_seconds))
    except httpx.TimeoutException as exc:
        return SendResult(False, True, None, f"timed out after {channel.timeout_seconds:g}s ({type(exc).__name__})")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return SendResult(False, False, None, f"bad channel URL: {type(exc).__name__}: {redact(exc, secrets)}")
    except httpx.TransportError as exc:
        return SendResult(False, True, None, f"{type(exc).__name__}: {redact(exc, secrets)}")
    except Exception as exc:
        return SendResult(False, True, None, f"{type(exc).__name__}: {redact(exc, secrets)}")
    return interpret(channel.type, resp, now, secrets)


async def _post_within(url: str, content: bytes, headers: dict[str, str], total_s: float) -> httpx.Response:
    """POST with `total_s` bounding the whole exchange, connect to the last body byte.

    httpx's `timeout=` bounds each phase (each read may wait that long), so a receiver
    that trickles its answer could hold a request past the sender's claim lease, and
    another sender would claim and send it again. Cancelling the coroutine closes the
    connection, so nothing of this request outlives the bound.
    """
    async with httpx.AsyncClient(follow_redirects=False) as client:
        try:
            async with asyncio.timeout(total_s):
                return await client.post(url, content=content, headers=headers, timeout=total_s)
        except TimeoutError:
            raise httpx.TimeoutException(f"the whole request took longer than {total_s:g}s") from None


def interpret(channel_type: str, resp: httpx.Response, now: datetime, secrets: list[str] | None = None) -> SendResult:
    """HTTP status and vendor body -> SendResult."""
    code = resp.status_code
    snippet = redact(resp.text[:300].replace("\n", " "), secrets or ())
    data: Any = None
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        data = None
    verdict = module_for(channel_type).check(code, data)
    retry_after = parse_retry_after(resp.headers.get("Retry-After"), now)
    if code == 429:
        return SendResult(False, True, code, f"HTTP 429 rate limited: {snippet}", retry_after)
    if 200 <= code < 300:
        if verdict is None or verdict.ok:
            return SendResult(True, False, code)
        return SendResult(
            False, verdict.retryable, code, redact(verdict.error, secrets or ()), verdict.retry_after or retry_after
        )
    if verdict is not None and not verdict.ok and verdict.retryable:
        # e.g. Feishu's frequency limit delivered with a 4xx status
        return SendResult(False, True, code, redact(verdict.error, secrets or ()), verdict.retry_after or retry_after)
    if code >= 500 or code == 408:
        return SendResult(False, True, code, f"HTTP {code}: {snippet}", retry_after)
    if 300 <= code < 400:
        return SendResult(False, False, code, f"HTTP {code}: redirects are not followed; check the channel URL")
    return SendResult(False, False, code, f"HTTP {code}: {snippet}")


def default_rate_per_minute(channel: Channel) -> float | None:
    if channel.rate_per_minute is not None:
        return channel.rate_per_minute if channel.rate_per_minute > 0 else None
    return module_for(channel.type).DEFAULT_RATE_PER_MINUTE


# --- `finsent channels list` / `finsent channels test NAME` ---------------------------------


def list_channels(settings: Any) -> list[dict[str, Any]]:
    """The configured channels for display: URLs reduced to scheme and host, secrets masked."""
    from monitor.redact import mask_url

    out = []
    for c in settings.channels:
        out.append(
            {
                "name": c.name,
                "type": c.type,
                "url": mask_url(c.url.get_secret_value() if c.url else None),
                "url_env": c.url_env,
                "secret": "**********" if c.secret else None,
                "signed": c.secret is not None,
                "rate_per_minute": default_rate_per_minute(c),
                "timeout_seconds": c.timeout_seconds,
            }
        )
    return out


def test_message(settings: Any, name: str, now: datetime) -> dict[str, Any]:
    return {
        "version": "1",
        "notification_id": f"test:{name}:{int(now.timestamp())}",
        "kind": "test",
        "status": "test",
        "repeat": False,
        "channel": name,
        "created_at": now.isoformat(),
        "dashboard_url": settings.dashboard_url,
        "alerts": [],
    }


def send_test(settings: Any, name: str, *, client: httpx.Client | None = None) -> SendResult:
    """Send a test message to one channel now (not through the outbox). Raises ValueError
    for an unknown channel name; delivery problems come back in the result."""
    from monitor.redact import register_settings_secrets

    register_settings_secrets(settings)
    ch = next((c for c in settings.channels if c.name == name), None)
    if ch is None:
        known = ", ".join(c.name for c in settings.channels) or "none configured"
        raise ValueError(f"no channel named {name!r}; configured: {known}")
    now = datetime.now(UTC)
    msg = test_message(settings, name, now)
    result = deliver(ch, render_body(ch.type, msg, locale=ch.locale), msg["notification_id"], client=client, now=now)
    if result.ok:
        log.info("test message sent to channel %s", name)
    else:
        log.warning("test message to channel %s failed: %s", name, result.error)
    return result
