"""Notifiers: render a message for a channel, sign it, POST it, and say how it went.

`deliver` never raises for delivery problems and never lets a secret out: its result's
`error` is redacted, httpx's own log lines go through the redacting filter, and exceptions
are reduced to their type and a redacted message. Whether a failure is worth retrying is
decided here (Alertmanager's rule): timeouts, connection errors, 5xx and 429 (honouring
Retry-After) yes; other 4xx no; a 200 whose body carries a vendor error code is a failure,
retryable when the code is a rate limit.
"""

from __future__ import annotations

import email.utils
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import jinja2

from monitor import __version__
from monitor.notify.channels import module_for
from monitor.config import Channel
from monitor.redact import REDACTING_FILTER, install_log_redaction, redact

log = logging.getLogger(__name__)
log.addFilter(REDACTING_FILTER)
install_log_redaction()

TEMPLATES = Path(__file__).with_name("templates")
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


# --- rendering ---------------------------------------------------------------------------


def _pct(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, int | float) else "n/a"


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return f"{v:,}" if isinstance(v, int | float) else "n/a"


def _pval(v: Any) -> str:
    if not isinstance(v, int | float):
        return "n/a"
    return f"{v:.2e}" if v < 0.001 else f"{v:.3f}"


def _when(v: Any) -> str:
    if not v:
        return "n/a"
    try:
        t = datetime.fromisoformat(str(v)).astimezone(UTC)
    except ValueError:
        return str(v)
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _md(v: Any) -> str:
    """Keep headline text from breaking Markdown links and emphasis."""
    s = "" if v is None else str(v)
    for ch in "\\[]*_`":
        s = s.replace(ch, "\\" + ch)
    return s.replace("\n", " ")


def _mrkdwn(v: Any) -> str:
    s = "" if v is None else str(v)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


@lru_cache(maxsize=8)
def _env(extra_dir: str | None = None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if extra_dir:
        loaders.append(jinja2.FileSystemLoader(extra_dir))
    loaders.append(jinja2.FileSystemLoader(str(TEMPLATES)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=False,  # chat markup, not HTML; escaping is per dialect (md, mrkdwn filters)
        trim_blocks=False,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(pct=_pct, num=_num, pval=_pval, when=_when, md=_md, mrkdwn=_mrkdwn)
    return env


def render_text(channel_type: str, message: dict[str, Any], templates_dir: str | None = None) -> tuple[str, str]:
    """(title, body text) from `title.j2` and `<type>.j2` (else `markdown.j2`)."""
    env = _env(templates_dir)
    title = " ".join(env.get_template("title.j2").render(m=message).split())
    try:
        tpl = env.get_template(f"{channel_type}.j2")
    except jinja2.TemplateNotFound:
        tpl = env.get_template("markdown.j2")
    text = tpl.render(m=message).strip()
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return title, text


def render_body(channel_type: str, message: dict[str, Any], templates_dir: str | None = None) -> dict[str, Any]:
    """The vendor request body (before signing) for a message."""
    title, text = render_text(channel_type, message, templates_dir)
    return module_for(channel_type).render(message, title, text)


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

    own = client is None
    http = client or httpx.Client()
    try:
        resp = http.post(
            prep.url, content=prep.content, headers=headers, timeout=channel.timeout_seconds, follow_redirects=False
        )
    except httpx.TimeoutException as exc:
        return SendResult(False, True, None, f"timed out after {channel.timeout_seconds:g}s ({type(exc).__name__})")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return SendResult(False, False, None, f"bad channel URL: {type(exc).__name__}: {redact(exc, secrets)}")
    except httpx.TransportError as exc:
        return SendResult(False, True, None, f"{type(exc).__name__}: {redact(exc, secrets)}")
    except Exception as exc:
        return SendResult(False, True, None, f"{type(exc).__name__}: {redact(exc, secrets)}")
    finally:
        if own:
            http.close()
    return interpret(channel.type, resp, now, secrets)


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
    result = deliver(ch, render_body(ch.type, msg), msg["notification_id"], client=client, now=now)
    if result.ok:
        log.info("test message sent to channel %s", name)
    else:
        log.warning("test message to channel %s failed: %s", name, result.error)
    return result
