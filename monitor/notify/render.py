"""Channel bodies from messages: Jinja2 templates (`templates/`) plus each channel's module.

Pure apart from reading the template files: a message dict in, the vendor request body
(before signing) out. Alerting renders at enqueue time, so the outbox row holds exactly
what will be sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from models.labels import TOPIC_NAMES_ZH
from monitor.notify.channels import module_for

TEMPLATES = Path(__file__).with_name("templates")


def _pct(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, int | float) else "n/a"


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return f"{v:,}" if isinstance(v, int | float) else "n/a"


P_FLOOR = 1e-12  # below this a p-value is a statement of certainty, not a number to compare


def _pval(v: Any) -> str:
    """p-values as people read them: "0.004", "3.1e-07", "< 1e-12" (never "0.00e+00")."""
    if not isinstance(v, int | float):
        return "n/a"
    if v < P_FLOOR:
        return "< 1e-12"
    return f"{v:.1e}" if v < 0.001 else f"{v:.3f}"


def _minutes(v: Any) -> str:
    """A horizon in minutes as "15 min", "4 h", "24 h"."""
    if not isinstance(v, int | float):
        return "n/a"
    return f"{int(v)} min" if v < 60 or v % 60 else f"{int(v) // 60} h"


def _when(v: Any) -> str:
    if not v:
        return "n/a"
    try:
        t = datetime.fromisoformat(str(v)).astimezone(UTC)
    except ValueError:
        return str(v)
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _minutes_zh(v: Any) -> str:
    """A horizon in minutes as "15 分钟", "4 小时"."""
    if not isinstance(v, int | float):
        return "不详"
    return f"{int(v)} 分钟" if v < 60 or v % 60 else f"{int(v) // 60} 小时"


def _zh_topic(v: Any) -> str:
    return TOPIC_NAMES_ZH.get(str(v), str(v))


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
    env.filters.update(
        pct=_pct,
        num=_num,
        pval=_pval,
        when=_when,
        md=_md,
        mrkdwn=_mrkdwn,
        minutes=_minutes,
        minutes_zh=_minutes_zh,
        zh_topic=_zh_topic,
    )
    return env


LOCALES = ("en", "zh")


def _template(env: jinja2.Environment, names: list[str], locale: str) -> jinja2.Template:
    """The first of `names` in the locale's folder (``zh/``), else the first in English."""
    prefixes = ([f"{locale}/"] if locale != "en" else []) + [""]
    return env.select_template([p + n for p in prefixes for n in names])


def render_text(
    channel_type: str, message: dict[str, Any], templates_dir: str | None = None, locale: str = "en"
) -> tuple[str, str]:
    """(title, body text) from `title.j2` and `<type>.j2` (else `markdown.j2`), in the
    channel's locale: ``zh`` reads ``templates/zh/`` first (Slack stays English)."""
    env = _env(templates_dir)
    if channel_type == "slack":
        locale = "en"  # mrkdwn, not Markdown: no Chinese Slack template yet, so the whole message stays English
    title = " ".join(_template(env, ["title.j2"], locale).render(m=message).split())
    tpl = _template(env, [f"{channel_type}.j2", "markdown.j2"], locale)
    text = tpl.render(m=message).strip()
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return title, text


def render_body(
    channel_type: str, message: dict[str, Any], templates_dir: str | None = None, locale: str = "en"
) -> dict[str, Any]:
    """The vendor request body (before signing) for a message."""
    title, text = render_text(channel_type, message, templates_dir, locale)
    return module_for(channel_type).render(message, title, text)
