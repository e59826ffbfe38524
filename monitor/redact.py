"""Keep channel secrets out of logs, errors, exceptions and the database.

Chat webhooks carry their credential in the URL (Slack/Teams paths, the DingTalk
`access_token` query, the Feishu hook id), and httpx puts the URL into its log lines and
some exception messages. So every string that leaves the notification code goes through
`redact`: known secrets are replaced wherever they appear, and any URL keeps only its
scheme and host. Pure: no I/O.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

MASK = "***"

# scheme://[userinfo@]host[:port] then an optional path/query/fragment.
_URL_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)(?:[^/\s'\"<>@]*@)?([^/\s'\"<>?#]+)([^\s'\"<>]*)")
# key=value pairs whose value is a credential, wherever they appear (query strings, forms).
_PARAM_RE = re.compile(r"(?i)\b(access_token|token|sign|signature|secret|key|sig|password|code)=([^&\s'\"]+)")

_lock = threading.Lock()
_registered: set[str] = set()


def secret_parts(value: str) -> set[str]:
    """A secret and the pieces of it that could leak on their own (URL path segments, query values)."""
    parts = {value}
    if "://" in value:
        u = urlsplit(value)
        if u.path and u.path != "/":
            parts.add(u.path)
            parts.update(seg for seg in u.path.split("/") if len(seg) >= 8)
        if u.query:
            parts.add(u.query)
            parts.update(v for _, v in parse_qsl(u.query) if len(v) >= 6)
        if u.password:
            parts.add(u.password)
    return {p for p in parts if len(p) >= 6}


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secrets process-wide so the logging filter masks them too."""
    with _lock:
        for v in values:
            if v:
                _registered.update(secret_parts(v))


def register_settings_secrets(settings: Any) -> None:
    """Register every secret a `Settings` holds: channel URLs and signing secrets, the
    dashboard password, the database password."""
    values: list[str | None] = []
    for ch in getattr(settings, "channels", ()):
        for attr in ("url", "secret"):
            v = getattr(ch, attr, None)
            values.append(v.get_secret_value() if v is not None else None)
    pw = getattr(settings, "dashboard_password", None)
    values.append(pw.get_secret_value() if pw is not None else None)
    with contextlib.suppress(ValueError):
        values.append(urlsplit(getattr(settings, "database_url", "") or "").password)
    register_secrets(values)


def registered_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_registered)


def _mask_url(m: re.Match[str]) -> str:
    rest = m.group(3)
    return f"{m.group(1)}{m.group(2)}{'/' + MASK if rest not in ('', '/') else rest}"


def redact(text: object, secrets: Iterable[str] = ()) -> str:
    """`text` as a string with secrets, URL paths/queries and credential parameters masked."""
    s = str(text)
    known = set(secrets) | registered_secrets()
    expanded: set[str] = set()
    for k in known:
        if k:
            expanded |= secret_parts(k) if "://" in k else {k}
    for k in sorted(expanded, key=len, reverse=True):
        if len(k) >= 4:
            s = s.replace(k, MASK)
    s = _URL_RE.sub(_mask_url, s)
    return _PARAM_RE.sub(lambda m: f"{m.group(1)}={MASK}", s)


def mask_url(url: str | None) -> str:
    """A channel URL for display: scheme and host only (`https://hooks.slack.com/***`)."""
    if not url:
        return ""
    u = urlsplit(url)
    if not u.scheme or not u.hostname:
        return MASK
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.hostname}{port}/{MASK}"


_TRACEBACKS = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with `redact` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not break logging
            msg = str(record.msg)
        clean = redact(msg)
        if clean != msg or record.args:
            record.msg = clean
            record.args = ()
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks of HTTP errors print the URL: keep the traceback (an operator needs
            # it to debug a crash) and redact its text. Formatters print `exc_text` when it
            # is set, so the raw traceback is never formatted.
            record.exc_text = redact(record.exc_text or _TRACEBACKS.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


REDACTING_FILTER = RedactingFilter()


def install_log_redaction(*logger_names: str) -> None:
    """Attach the filter to httpx's loggers (they log request URLs), to the given loggers,
    and to every handler of the root logger (so records from any module are covered once
    the entry point has configured logging)."""
    for name in ("httpx", "httpcore", *logger_names):
        lg = logging.getLogger(name)
        if REDACTING_FILTER not in lg.filters:
            lg.addFilter(REDACTING_FILTER)
    for handler in logging.getLogger().handlers:
        if REDACTING_FILTER not in handler.filters:
            handler.addFilter(REDACTING_FILTER)


def redact_url(url: str) -> str:
    """A database URL with its password masked, for logs and `finsent config`
    (`postgresql://user:***@host:5432/db`)."""
    try:
        u = urlsplit(url)
        if u.password is None:
            return url
        host = u.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{u.port}" if u.port else ""
        user = u.username or ""
        return urlunsplit((u.scheme, f"{user}:{MASK}@{host}{port}", u.path, u.query, u.fragment))
    except ValueError:
        return "<unparseable database URL>"
