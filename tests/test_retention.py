"""Retention: a batched purge that changes no alert, and long views that still draw from
the roll-ups. 60 days of minute counts are loaded day by day as a live stream would write
them; one run purges after each day (minutes kept 30 days, hourly roll-ups 45), the other
keeps everything; the detector ticks hourly through the last 30 days (with planted
surges) in both and must give the same signals, and the 90-day daily chart must show the
same counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from monitor.config import RetentionSettings, Settings
from monitor.detect.runner import forget, tick
from monitor.detect.windows import from_minute
from monitor.store.migrate import upgrade
from monitor.store.repository import insert_counts
from monitor.store.retention import purge
from monitor.store.schema import count_rollups, make_engine, minute_counts
from pipelines.feed import Surge, generate
from tests.test_detect_e2e import count

T0 = datetime(2024, 5, 1, tzinfo=UTC)
DAYS = 60
CHECKED_DAYS = 30
RET = RetentionSettings(minute_counts_days=30, hourly_rollups_days=45, batch_rows=2000)  # type: ignore[call-arg]


def _rows_by_day() -> list[list[dict[str, object]]]:
    surges = [
        Surge(sym, T0 + timedelta(days=DAYS - back, hours=14), 60, 4.0)
        for sym, back in (("JPM", 1), ("AAPL", 9), ("TSLA", 20), ("NVDA", 29))
    ]
    mc = count(list(generate(5, T0, DAYS * 1440, 1.5, surges=surges)))
    days: list[list[dict[str, object]]] = [[] for _ in range(DAYS)]
    for (k, v, m), (t, nt, nn, neg) in mc.cells().items():
        at = from_minute(m)
        days[(at - T0).days].append(
            {"key_kind": k, "key_value": v, "minute": at, "total": t, "negative": neg, "neutral": 0, "positive": 0,
             "novel_total": nt, "novel_negative": nn}
        )  # fmt: skip
    return days


def _run(url: str, retain: bool) -> tuple[list[tuple[str, str, datetime]], list[object]]:
    upgrade(url)
    engine = make_engine(url)
    forget(engine)
    s = Settings(database_url=url, retention=RET)
    fired: list[tuple[str, str, datetime]] = []
    batches: list[object] = []
    for day, rows in enumerate(_rows_by_day()):
        with engine.begin() as conn:
            for i in range(0, len(rows), 5000):
                insert_counts(conn, rows[i : i + 5000])
        end = T0 + timedelta(days=day + 1)
        if retain:
            st = purge(engine, RET, end)
            batches.append(st.as_dict())
        if day >= DAYS - CHECKED_DAYS:
            for h in range(0, 24 * 60, 60):
                now = T0 + timedelta(days=day, minutes=h + 60)
                fired += [(x.key.kind, x.key.value, now) for x in tick(engine, s, now, lock=False) if x.spiking]
    engine.dispose()
    return fired, batches


def test_purge_changes_no_alert_and_long_views_draw_from_rollups(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dashboards.queries import data_bounds, series

    kept_url = f"sqlite:///{tmp_path / 'kept.db'}"
    purged_url = f"sqlite:///{tmp_path / 'purged.db'}"
    kept, _ = _run(kept_url, retain=False)
    got, stats = _run(purged_url, retain=True)
    assert {v for _k, v, _t in kept} >= {"JPM", "AAPL", "TSLA", "NVDA"}, "every planted surge should fire"
    assert got == kept, "the purge changed what the detector saw"

    kept_e, purged_e = make_engine(kept_url), make_engine(purged_url)
    with purged_e.connect() as c:
        oldest_minute = c.execute(select(func.min(minute_counts.c.minute))).scalar()
        grains = dict(c.execute(select(count_rollups.c.grain, func.count()).group_by(count_rollups.c.grain)).all())
    moved = sum(int(s["minutes_rolled_up"]) for s in stats)  # type: ignore[index]
    n_batches = sum(int(s["batches"]) for s in stats)  # type: ignore[index]
    print(f"\nretention: {moved} minute rows rolled up in {n_batches} transactions; roll-up rows {grains}")
    assert oldest_minute is not None and oldest_minute.replace(tzinfo=UTC) >= T0 + timedelta(
        days=DAYS - RET.minute_counts_days - 1
    )
    passes = sum(1 for s in stats if s["minutes_rolled_up"])  # type: ignore[index]
    assert grains.get("hour") and grains.get("day") and n_batches > passes > 0

    start, end = T0 - timedelta(days=90 - DAYS), T0 + timedelta(days=DAYS)  # a 90-day chart
    a = series(kept_e, "all", start, end, 86400)
    b = series(purged_e, "all", start, end, 86400)
    assert len(a) == DAYS and a[["bucket", "total", "negative", "novel_total"]].equals(
        b[["bucket", "total", "negative", "novel_total"]]
    )
    # hourly where hourly roll-ups are kept (older hours are daily now)
    hourly_from = end - timedelta(days=RET.hourly_rollups_days)
    ent_a = series(kept_e, "entity", hourly_from, end, 3600, keys=["JPM"])
    ent_b = series(purged_e, "entity", hourly_from, end, 3600, keys=["JPM"])
    assert ent_a[["bucket", "total"]].equals(ent_b[["bucket", "total"]])
    assert data_bounds(purged_e)[0] == T0
    kept_e.dispose()
    purged_e.dispose()


def test_purge_deletes_old_rows_in_batches_and_keeps_what_is_live(db_url: str) -> None:
    from monitor.classify.base import KeywordTestDouble
    from monitor.ingest.schemas import Document, Rejection
    from monitor.store.repository import Classified, Store, hour_count_mismatches, recount, stored_counts
    from monitor.store.schema import alert_events, dead_letters, documents, hour_counts, notifications

    upgrade(db_url)
    engine = make_engine(db_url)
    store = Store(engine)
    now = datetime(2024, 6, 30, tzinfo=UTC)
    items = []
    for i in range(60):
        at = now - timedelta(days=59 - i)
        text = f"Acme story number {i} about earnings"
        items.append(Classified(Document(f"d{i}", text, at), KeywordTestDouble().classify([text])[0], ("ACME",)))
    store.write_batch(items, [Rejection("bad", b"x", "news", 0, i) for i in range(5)], now - timedelta(days=45))
    with engine.begin() as c:
        c.execute(
            notifications.insert(),
            [
                {"dedup_key": f"k{i}", "channel": "x", "kind": "firing", "payload": {}, "status": st,
                 "attempts": 1, "next_attempt_at": now, "created_at": now - timedelta(days=40)}
                for i, st in enumerate(["sent", "failed", "pending"])
            ],
        )  # fmt: skip
        c.execute(
            alert_events.insert(),
            [
                {"alert_id": f"a{i}", "kind": "fired", "payload": {}, "created_at": now - timedelta(days=age),
                 "published_at": now - timedelta(days=age)}
                for i, age in enumerate([40, 2])
            ],
        )  # fmt: skip
    r = RetentionSettings(documents_days=30, minute_counts_days=30, batch_rows=7)  # type: ignore[call-arg]
    st = purge(engine, r, now)
    with engine.connect() as c:
        left = [x[0] for x in c.execute(select(documents.c.id).order_by(documents.c.published_at))]
        statuses = sorted(x[0] for x in c.execute(select(notifications.c.status)))
        events_left = [x[0] for x in c.execute(select(alert_events.c.alert_id))]
        n_dead = c.execute(select(func.count()).select_from(dead_letters)).scalar_one()
        minutes_left = c.execute(select(func.count()).select_from(minute_counts)).scalar_one()
        rolled = dict(
            c.execute(
                select(count_rollups.c.key_kind, func.sum(count_rollups.c.total)).group_by(count_rollups.c.key_kind)
            ).all()
        )
        live_counts_match = stored_counts(c) == recount(c)  # what is left still agrees
        hour_drift = hour_count_mismatches(c)  # the hourly sums cover exactly the minutes kept
        oldest_hour = c.execute(select(func.min(hour_counts.c.hour))).scalar_one()
    engine.dispose()
    print(f"\npurge: {st.as_dict()}")
    assert left == [f"d{i}" for i in range(29, 60)] and st.documents == 29
    assert events_left == ["a1"] and st.alert_events == 1
    assert statuses == ["pending"] and n_dead == 0
    assert rolled["all"] == 29 and minutes_left > 0  # every purged minute rolled up, the rest kept
    assert live_counts_match
    assert not hour_drift and oldest_hour >= int((now - timedelta(days=30)).timestamp()) // 3600
    assert len(st.batches) > 3  # in batches of 7 rows
