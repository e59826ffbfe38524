"""The outbox's backlog, for the metrics: how many notifications wait, and since when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from monitor.store.schema import notifications


def backlog(engine: Engine, now: datetime) -> tuple[int, float]:
    """(pending notifications, age in seconds of the oldest of them; 0 when none)."""
    n = notifications.c
    with engine.connect() as conn:
        count, oldest = conn.execute(select(func.count(), func.min(n.created_at)).where(n.status == "pending")).one()
    if not count or oldest is None:
        return 0, 0.0
    return int(count), max(0.0, (now - oldest).total_seconds())
