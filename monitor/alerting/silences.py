"""Silences in the database: add, list, expire, and the ones active at a time.

A silence mutes the alerts its matchers match (`monitor.alerting.matchers`) while it is
active; the alerting tick loads the active ones with its snapshot (`repository`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update

from monitor.alerting.matchers import Matcher, Silence, parse_matcher
from monitor.alerting.repository import Bind, row_to_silence, tx
from monitor.store.schema import silences

log = logging.getLogger(__name__)


def add_silence(
    bind: Bind,
    matchers: Sequence[Matcher | str],
    *,
    now: datetime,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
    starts_at: datetime | None = None,
    created_by: str = "finsent",
    comment: str = "",
) -> Silence:
    """Create a silence; `matchers` as Matcher or text (`key_value=AAPL`, `topic=~Earn.*`)."""
    ms = tuple(m if isinstance(m, Matcher) else parse_matcher(m) for m in matchers)
    if not ms:
        raise ValueError("a silence needs at least one matcher, e.g. key_value=AAPL")
    start = starts_at or now
    end = ends_at or (start + duration if duration is not None else None)
    if end is None:
        raise ValueError("a silence needs an end: give ends_at or duration")
    if end <= start:
        raise ValueError(f"a silence must end after it starts ({start.isoformat()} >= {end.isoformat()})")
    s = Silence(uuid.uuid4().hex, ms, start, end, created_by, comment)
    with tx(bind) as conn:
        conn.execute(
            silences.insert().values(
                id=s.id,
                matchers=[m.as_dict() for m in ms],
                starts_at=start,
                ends_at=end,
                created_by=created_by,
                comment=comment,
                created_at=now,
            )
        )
    log.info("silence %s added by %s until %s: %s", s.id, created_by, end.isoformat(), ", ".join(map(str, ms)))
    return s


def list_silences(bind: Bind, now: datetime, *, include_expired: bool = False) -> list[Silence]:
    """Active and future silences (and expired ones when asked), soonest ending first."""
    q = select(silences).order_by(silences.c.ends_at, silences.c.id)
    if not include_expired:
        q = q.where(silences.c.ends_at > now)
    with tx(bind) as conn:
        return [row_to_silence(r) for r in conn.execute(q).mappings()]


def expire_silence(bind: Bind, silence_id: str, now: datetime) -> bool:
    """End a silence now. False if there is no such silence or it has already ended."""
    with tx(bind) as conn:
        res = conn.execute(
            update(silences).where(silences.c.id == silence_id, silences.c.ends_at > now).values(ends_at=now)
        )
    return bool(res.rowcount)
