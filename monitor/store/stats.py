"""`finsent stats`: what the database holds, by the contract's names."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from monitor.config import Settings
from monitor.store.repository import table_count
from monitor.store.schema import alerts, dead_letters, documents, make_engine, notifications


def collect(settings: Settings) -> dict[str, Any]:
    engine = make_engine(settings.database_url)
    try:
        from monitor.store.migrate import require_current

        require_current(settings.database_url, engine)
        with engine.connect() as conn:
            by_state: dict[str, int] = dict(
                conn.execute(select(alerts.c.state, func.count()).group_by(alerts.c.state)).all()
            )
            by_status: dict[str, int] = dict(
                conn.execute(select(notifications.c.status, func.count()).group_by(notifications.c.status)).all()
            )
            newest = conn.execute(select(func.max(documents.c.published_at))).scalar()
            return {
                "documents": table_count(conn, documents),
                "dead_letters": table_count(conn, dead_letters),
                "alerts": sum(by_state.values()),
                "alerts_by_state": by_state,
                "notifications": by_status,
                "latest_published_at": newest.isoformat() if newest else None,
            }
    finally:
        engine.dispose()
