"""The detector lease is judged by the database's clock, not the daemons' host clocks: a
daemon whose clock runs five minutes slow must not look expired to the others while it
is alive (two detectors would tick at once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.config import Settings
from monitor.detect.runner import tick
from monitor.store.migrate import upgrade
from monitor.store.schema import make_engine


def test_lease_ignores_a_slow_host_clock(pg_url: str) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    s = Settings(database_url=pg_url)
    now = datetime(2024, 3, 4, 12, tzinfo=UTC)
    real = datetime.now(UTC)
    assert tick(engine, s, now, owner="slow", wall=real - timedelta(minutes=5)) is not None
    # "slow" holds the lease, renewed just now; "fast" must not take it over.
    got_fast = tick(engine, s, now, owner="fast", wall=real)
    assert got_fast == [] and _holder(engine) == "slow"
    engine.dispose()


def test_lease_ignores_a_fast_host_clock(pg_url: str) -> None:
    """A holder whose clock runs ahead would otherwise look alive long after it died."""
    from sqlalchemy import text

    upgrade(pg_url)
    engine = make_engine(pg_url)
    s = Settings(database_url=pg_url)
    now = datetime(2024, 3, 4, 12, tzinfo=UTC)
    real = datetime.now(UTC)
    tick(engine, s, now, owner="fast", wall=real + timedelta(hours=1))
    with engine.begin() as c:  # "fast" died two minutes (of the database's time) ago
        c.execute(text("UPDATE state SET updated_at = updated_at - interval '2 minutes' WHERE name = 'detector.lease'"))
    tick(engine, s, now, owner="other", wall=real)
    assert _holder(engine) == "other"
    engine.dispose()


def _holder(engine) -> str:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from monitor.store.schema import state

    with engine.connect() as c:
        return str(c.execute(select(state.c.value).where(state.c.name == "detector.lease")).scalar_one()["owner"])
