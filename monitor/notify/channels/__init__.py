"""One module per chat vendor (and Alertmanager): how a message becomes that vendor's request body, how the
request is signed, and how its reply says "failed" when the HTTP status says 200.

Each module exposes `DEFAULT_RATE_PER_MINUTE`, `render(message, title, text) -> dict`,
`prepare(url, secret, body, now) -> Prepared` and `check(status, data) -> Verdict | None`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType


@dataclass(frozen=True, slots=True)
class Prepared:
    url: str
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A vendor-level answer read from the body: ok, or a failure and whether to retry."""

    ok: bool
    retryable: bool = False
    error: str | None = None
    retry_after: float | None = None


def module_for(channel_type: str) -> ModuleType:
    from monitor.notify.channels import alertmanager, dingtalk, feishu, slack, teams, webhook

    mods = {
        "webhook": webhook,
        "slack": slack,
        "teams": teams,
        "feishu": feishu,
        "dingtalk": dingtalk,
        "alertmanager": alertmanager,
    }
    try:
        return mods[channel_type]
    except KeyError:
        raise ValueError(f"unknown channel type {channel_type!r}; use one of {', '.join(mods)}") from None
