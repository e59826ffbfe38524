"""Bounded keys: a cashtag that names no known company must recur before it becomes a
company key (count rows, a detector key); watchlist companies count from the first
mention. Idle sightings are forgotten by the retention purge."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from monitor.classify.base import KeywordTestDouble
from monitor.config import Entity, Settings
from monitor.ingest.source import RawRecord
from monitor.store.migrate import upgrade
from monitor.store.repository import recount, stored_counts
from monitor.store.schema import entity_sightings, make_engine, minute_counts

T = datetime(2024, 5, 6, 9, tzinfo=UTC)


def _rec(i: int, text: str) -> RawRecord:
    body = {"id": f"d{i}", "text": text, "published_at": (T + timedelta(minutes=i)).isoformat()}
    return RawRecord(json.dumps(body).encode(), "news", 0, i, T)


def _entity_keys(url: str) -> dict[str, int]:
    eng = make_engine(url)
    with eng.connect() as c:
        rows = c.execute(
            select(minute_counts.c.key_value, minute_counts.c.total).where(minute_counts.c.key_kind == "entity")
        ).all()
        assert stored_counts(c) == recount(c)
    eng.dispose()
    out: dict[str, int] = {}
    for k, n in rows:
        out[k] = out.get(k, 0) + n
    return out


def test_unknown_cashtags_must_recur_before_they_become_keys(tmp_path: Path) -> None:
    from monitor.app.wiring import build
    from monitor.store.retention import purge

    url = f"sqlite:///{tmp_path / 'k.db'}"
    upgrade(url)
    s = Settings(database_url=url, publish_results=False, entities=(Entity(symbol="ACME", aliases=("Acme",)),))
    proc = build(s).processor(KeywordTestDouble())
    now = T + timedelta(hours=1)
    proc.process([_rec(0, "Acme and $ZZZ rally"), _rec(1, "spam $QWERT1 now")], now)
    assert _entity_keys(url) == {"ACME": 1}, "a one-off unknown cashtag became a key"
    proc.process([_rec(2, "$ZZZ again, with Acme"), _rec(3, "$ZZZ a third time")], now)
    assert _entity_keys(url) == {"ACME": 2, "ZZZ": 2}  # from its second sighting on
    # a replay of the same records changes nothing (sightings count stored documents only)
    proc.process([_rec(2, "$ZZZ again, with Acme"), _rec(3, "$ZZZ a third time")], now)
    assert _entity_keys(url) == {"ACME": 2, "ZZZ": 2}

    # a month later (event time: the purge ages sightings against the stream's newest minute)
    late = {"id": "late", "text": "Acme holds steady", "published_at": (T + timedelta(days=30)).isoformat()}
    proc.process([RawRecord(json.dumps(late).encode(), "news", 0, 9, T + timedelta(days=30))], T + timedelta(days=30))
    stats = purge(build(s).engine, s.retention, T + timedelta(days=30))
    eng = make_engine(url)
    with eng.connect() as c:
        left = [r[0] for r in c.execute(select(entity_sightings.c.symbol))]
    eng.dispose()
    assert stats.sightings == 2 and left == []  # idle sightings forgotten
