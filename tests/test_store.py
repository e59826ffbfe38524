"""Idempotent storage and migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import func, inspect, select

from monitor.app.batch import BatchProcessor
from monitor.classify.base import KeywordTestDouble
from monitor.config import load_settings
from monitor.ingest.source import RawRecord
from monitor.store.migrate import current_revision, head_revision, upgrade
from monitor.store.repository import Store, hour_count_mismatches, recount, stored_counts, table_count
from monitor.store.schema import dead_letters, document_entities, documents, hour_counts, make_engine, minute_counts

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def rec(i: int, value: bytes | None, minute: int = 0) -> RawRecord:
    return RawRecord(value=value, topic="news", partition=i % 3, offset=i, timestamp=T0 + timedelta(minutes=minute))


def msg(text: str, **kw: object) -> bytes:
    import json

    return json.dumps({"text": text, **kw}).encode()


def test_migrations_up_from_empty(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    assert upgrade(db_url) == head_revision()
    names = set(inspect(engine).get_table_names())
    assert {"documents", "dead_letters", "minute_counts", "alerts", "notifications", "silences"} <= names
    assert upgrade(db_url) == head_revision()  # a second run is a no-op
    engine.dispose()


def test_upgrade_in_place_sums_the_stored_minutes_into_hours_and_matches_the_schema(db_url: str) -> None:
    """A database at 0004 with counts already stored: the upgrade fills `hour_counts` with
    their exact hourly sums, and the migrated schema is the one the code declares."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from monitor.store.migrate import alembic_config
    from monitor.store.schema import metadata

    engine = make_engine(db_url)
    with engine.begin() as conn:
        cfg = alembic_config(db_url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    base = T0.replace(minute=0)
    rows = [
        {"key_kind": kind, "key_value": value, "minute": base + timedelta(minutes=m), "total": t, "negative": n,
         "neutral": t - n, "positive": 0, "novel_total": t, "novel_negative": n}
        for kind, value in (("entity", "ACME"), ("topic", "Earnings"), ("all", "*"))
        for m, t, n in ((0, 2, 1), (59, 1, 1), (60, 3, 0), (61, 1, 0), (24 * 60 + 5, 4, 2))
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(minute_counts.insert(), rows)
    assert upgrade(db_url) == head_revision()
    with engine.connect() as c:
        assert not hour_count_mismatches(c)
        hours = c.execute(select(func.count()).select_from(hour_counts)).scalar_one()
        diff = compare_metadata(MigrationContext.configure(c), metadata)
    assert hours == 3 * 3
    assert diff == [], diff
    engine.dispose()


def _processor(url: str) -> tuple[BatchProcessor, object]:
    engine = make_engine(url)
    settings = load_settings(database_url=url, entities=[{"symbol": "AAPL", "aliases": ["Apple"]}])
    return BatchProcessor(settings, KeywordTestDouble(), Store(engine)), engine


def test_batch_is_idempotent(migrated: str) -> None:
    proc, engine = _processor(migrated)
    batch = [
        rec(0, msg("Apple shares plunge after recall", id="a1")),
        rec(1, msg("$TSLA deliveries beat, shares soar", id="a2", published_at="2024-05-01T11:59:30Z")),
        rec(2, b"\xff not utf8"),
        rec(3, msg("Markets drift sideways", id="a3", tickers=["SPY"])),
        rec(4, msg("")),
    ]
    first = proc.process(batch, T0)
    assert (first.inserted, first.duplicates, first.dead_letters) == (3, 0, 2)
    again = proc.process(batch, T0 + timedelta(seconds=5))  # a replay after a crash
    assert (again.inserted, again.duplicates, again.dead_letters) == (0, 3, 0)
    with engine.connect() as c:  # type: ignore[attr-defined]
        assert table_count(c, documents) == 3
        assert table_count(c, dead_letters) == 2
        assert stored_counts(c) == recount(c)
        assert not hour_count_mismatches(c)  # the hourly sums move with the minutes
        allrow = c.execute(select(minute_counts).where(minute_counts.c.key_kind == "all")).mappings().all()
        assert sum(r["total"] for r in allrow) == 3
        ents = {tuple(r) for r in c.execute(select(document_entities.c.document_id, document_entities.c.entity))}
        assert ents == {("a1", "AAPL"), ("a2", "TSLA"), ("a3", "SPY")}
        reasons = [r[0] for r in c.execute(select(dead_letters.c.reason))]
        assert any("UTF-8" in r for r in reasons) and any("empty" in r for r in reasons)
        row = c.execute(select(documents).where(documents.c.id == "a1")).mappings().one()
        assert row["sentiment"] == "negative" and row["model_version"] == "test-double-1"
        assert row["published_at"] == T0 and row["kafka_offset"] == 0
    engine.dispose()  # type: ignore[attr-defined]


def test_near_duplicates_counted_once_in_any_order(migrated: str) -> None:
    proc, engine = _processor(migrated)
    texts = [
        ("d1", "BREAKING: Acme Corp shares plunge 20% after accounting probe https://t.co/aaa", 5),
        ("d2", "RT @wire: BREAKING: Acme Corp shares plunge 20% after accounting probe https://t.co/bbb", 6),
        ("d3", "Acme Corp shares plunge 20% after accounting probe", 7),
        ("d4", "Completely different story about bond yields rising", 7),
    ]
    # Arrival order is the reverse of event order: the earliest copy still ends up the original.
    for doc_id, text, minute in reversed(texts):
        proc.process([rec(minute, msg(text, id=doc_id, published_at=(T0 + timedelta(minutes=minute)).isoformat()))], T0)
    with engine.connect() as c:  # type: ignore[attr-defined]
        dup = dict(c.execute(select(documents.c.id, documents.c.duplicate_of)).all())
        assert dup["d1"] is None and dup["d4"] is None
        assert dup["d2"] is not None and dup["d3"] is not None
        assert stored_counts(c) == recount(c)
        assert not hour_count_mismatches(c)  # the hourly sums move with the minutes
        novel = sum(
            r["novel_total"]
            for r in c.execute(select(minute_counts).where(minute_counts.c.key_kind == "all")).mappings()
        )
        assert novel == 2
    engine.dispose()  # type: ignore[attr-defined]


def test_poison_record_is_isolated(migrated: str) -> None:
    engine = make_engine(migrated)
    settings = load_settings(database_url=migrated)
    proc = BatchProcessor(settings, KeywordTestDouble(fail_on="POISON"), Store(engine))
    batch = [rec(i, msg(f"ordinary headline number {i}", id=f"p{i}")) for i in range(7)]
    batch.append(rec(7, msg("this one is POISON for the model", id="bad")))
    r = proc.process(batch, T0)
    assert r.inserted == 7 and r.dead_letters == 1
    with engine.connect() as c:
        reason = c.execute(select(dead_letters.c.reason)).scalar_one()
        assert "classifier failed" in reason
    engine.dispose()


def test_record_the_database_refuses_is_isolated(migrated: str) -> None:
    from sqlalchemy.exc import DataError

    engine = make_engine(migrated)

    class RefusingStore(Store):
        def write_batch(self, items, rejections, now, records=None):  # type: ignore[no-untyped-def]
            if any(it.doc.id == "evil" for it in items):
                raise DataError("INSERT ...", {}, ValueError("value out of range for the column"))
            return super().write_batch(items, rejections, now, records)

    settings = load_settings(database_url=migrated)
    proc = BatchProcessor(settings, KeywordTestDouble(), RefusingStore(engine))
    batch = [rec(i, msg(f"headline {i} about bonds", id=f"ok{i}")) for i in range(9)]
    batch.insert(4, rec(99, msg("the record the database refuses", id="evil")))
    batch.append(rec(100, b"not json"))
    r = proc.process(batch, T0)
    assert r.inserted == 9 and r.dead_letters == 2
    with engine.connect() as c:
        reasons = sorted(x[0] for x in c.execute(select(dead_letters.c.reason)))
        assert any("database refused the record" in x and "out of range" in x for x in reasons)
        assert table_count(c, documents) == 9
    engine.dispose()


def test_detector_reads_the_feed_row_the_store_writes(migrated: str) -> None:
    """The store bumps one feed-wide minute_counts row per document; the detector must find
    that row (the feed's volume, which each key's expected count is scaled from)."""
    from monitor.classify.base import Prediction
    from monitor.detect.detector import Detector
    from monitor.detect.params import Params, span_bounds
    from monitor.detect.source import SqlSource
    from monitor.detect.windows import to_minute
    from monitor.ingest.schemas import Document
    from monitor.store.keys import FEED
    from monitor.store.repository import Classified

    engine = make_engine(migrated)
    hour = T0.replace(minute=0)
    items = [
        Classified(
            doc=Document(id=f"d{i}", text=f"story {i}", published_at=hour + timedelta(minutes=i)),
            pred=Prediction(topic, 0.9, "negative" if i == 1 else "neutral", 0.8),
            entities=(),
        )
        for i, topic in enumerate(["Earnings", "Macro", "Earnings"])
    ]
    Store(engine).write_batch(items, [], T0)
    with engine.connect() as c:
        keys = {
            (r.key_kind, r.key_value) for r in c.execute(select(minute_counts.c.key_kind, minute_counts.c.key_value))
        }
        assert FEED in keys
        p = Params()
        end = to_minute(hour) + p.span_minutes + 60 * 2  # the hour is well inside the baseline
        h0, h1, _ = span_bounds(end, p)
        det = Detector(p)
        ev = det.evidence(SqlSource(c), end)
    col = to_minute(hour) // 60 - h0
    assert 0 <= col < h1 - h0
    # The feed row is the volume every key's expected count is scaled from: all 3 stories
    # (pooling the topics would also give 3 here, but the feed row is what is read).
    assert ev.feed_base_total == 3
    assert det._ring_sum[:, det._index[FEED]].tolist() == [3, 1, 3, 1]
    engine.dispose()


def test_company_counts_use_the_sentiment_toward_each_company(migrated: str) -> None:
    """One headline, two companies, two sentiments: each company's counts and its
    document_entities row carry its own; the feed and topic rows carry the document's."""
    proc, engine = _processor(migrated)
    first = proc.process([rec(0, msg("Tesla deliveries beat, shares soar. GM shares plunge on a recall", id="tg"))], T0)
    assert first.inserted == 1
    with engine.connect() as c:  # type: ignore[attr-defined]
        rows = {(r.key_kind, r.key_value): r for r in c.execute(select(minute_counts))}
        assert rows[("entity", "GM")].negative == 1 and rows[("entity", "GM")].positive == 0
        assert rows[("entity", "TSLA")].positive == 1 and rows[("entity", "TSLA")].negative == 0
        toward = dict(c.execute(select(document_entities.c.entity, document_entities.c.sentiment)).all())
        assert toward == {"TSLA": "positive", "GM": "negative"}
        doc = c.execute(select(documents.c.entity_sentiment, documents.c.chunks)).one()
        assert doc.entity_sentiment == {"TSLA": "positive", "GM": "negative"} and doc.chunks == 1
        assert recount(c) == stored_counts(c)
        assert not hour_count_mismatches(c)  # the hourly sums move with the minutes
    # A later-arriving earlier copy demotes the original: its novel counts move per company.
    proc.process(
        [
            rec(
                1,
                msg(
                    "Tesla deliveries beat, shares soar. GM shares plunge on a recall!",
                    id="tg0",
                    published_at="2024-05-01T11:00:00Z",
                ),
            )
        ],
        T0,
    )
    with engine.connect() as c:  # type: ignore[attr-defined]
        assert recount(c) == stored_counts(c)
        assert not hour_count_mismatches(c)  # the hourly sums move with the minutes
    engine.dispose()  # type: ignore[attr-defined]


def _bulk_counts(engine, keys: int, days: int, end: datetime, seed: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Random minute counts for `keys` keys (and the feed row) over `days` days before `end`,
    written around the store, with the hour sums rebuilt from them."""
    import random

    from monitor.store.keys import FEED
    from monitor.store.repository import rebuild_hour_counts

    rng = random.Random(seed)
    names = [("topic", "Earnings"), ("topic", "Macro")] + [("entity", f"C{i:03d}") for i in range(keys)] + [FEED]
    rows = []
    for kind, value in names:
        for m in rng.sample(range(days * 1440), 80 if kind != "entity" else rng.randint(1, 40)):
            total = rng.randint(1, 4)
            neg = rng.randint(0, total)
            novel = rng.randint(1, total)
            rows.append(
                {
                    "key_kind": kind,
                    "key_value": value,
                    "minute": end - timedelta(minutes=days * 1440 - m),
                    "total": total,
                    "negative": neg,
                    "neutral": total - neg,
                    "positive": 0,
                    "novel_total": novel,
                    "novel_negative": min(neg, novel),
                }
            )
    with engine.begin() as c:
        c.execute(minute_counts.insert(), rows)
        rebuild_hour_counts(c)


def test_columnar_and_row_reads_give_the_detector_the_same_counts(migrated: str) -> None:
    """On PostgreSQL a cold detector reads long spans as Arrow columns (ADBC), short ones
    row by row: both give the same rows, and a cold tick the same evidence and verdicts.
    SQLite is always read row by row (see `ArrowReader.for_url`)."""
    from monitor.detect.detector import Detector
    from monitor.detect.params import Params, span_bounds
    from monitor.detect.source import SqlSource
    from monitor.detect.spike import evaluate
    from monitor.detect.windows import from_minute, to_minute

    engine = make_engine(migrated)
    end_dt = T0 + timedelta(days=8)
    _bulk_counts(engine, keys=60, days=8, end=end_dt)
    p = Params()
    end = to_minute(end_dt)
    h0, h1, m0 = span_bounds(end, p)

    def as_set(rows):  # type: ignore[no-untyped-def]
        cols = zip(
            rows.key_idx.tolist(),
            rows.bucket.tolist(),
            rows.novel_total.tolist(),
            rows.novel_negative.tolist(),
            rows.total.tolist(),
            rows.negative.tolist(),
            strict=True,
        )
        return sorted((rows.keys[k], *rest) for k, *rest in cols)

    with engine.connect() as c:
        fast, slow = SqlSource(c), SqlSource(c, columnar=False)
        for lo, hi, per in [(h0 * 60, h1 * 60, 60), (m0, end, 1)]:
            a, b = fast.fetch(lo, hi, per), slow.fetch(lo, hi, per)
            assert len(a.keys) > 50 and as_set(a) == as_set(b)
        columnar = 2 if engine.dialect.name == "postgresql" else 0
        assert fast.columnar_reads == columnar and slow.columnar_reads == 0
        assert from_minute(end) == end_dt
        evidences = [Detector(p).evidence(src, end) for src in (SqlSource(c), SqlSource(c, columnar=False))]
    verdicts = [evaluate(ev, p) for ev in evidences]
    assert evidences[0].keys == evidences[1].keys and len(evidences[0].keys) > 50
    for name in ("spiking", "calm", "window", "k", "n", "expected"):
        assert np.array_equal(getattr(verdicts[0], name), getattr(verdicts[1], name)), name
    assert np.array_equal(evidences[0].block_tot, evidences[1].block_tot)
    assert np.array_equal(evidences[0].block_neg, evidences[1].block_neg)
    for w in evidences[0].sums:
        assert np.array_equal(evidences[0].sums[w], evidences[1].sums[w]), w
    engine.dispose()


def test_a_source_given_an_engine_connects_only_when_it_reads(migrated: str) -> None:
    """A replay's tick passes the engine: no connection is taken until a span is read, and
    closing the source gives it back; the rows are those of a source on a connection."""
    from monitor.detect.source import SqlSource
    from monitor.detect.windows import to_minute

    engine = make_engine(migrated)
    end_dt = T0 + timedelta(days=2)
    _bulk_counts(engine, keys=8, days=2, end=end_dt)
    end = to_minute(end_dt)
    lazy = SqlSource(engine)
    assert engine.pool.checkedout() == 0
    got = lazy.fetch(end - 120, end, 1)
    assert engine.pool.checkedout() == 1
    lazy.close()
    assert engine.pool.checkedout() == 0
    with engine.connect() as c:
        ref = SqlSource(c).fetch(end - 120, end, 1)
    assert len(got.keys) > 3 and got.keys == ref.keys
    assert np.array_equal(got.bucket, ref.bucket) and np.array_equal(got.negative, ref.negative)
    engine.dispose()


def test_columnar_reads_only_where_a_second_connection_is_safe() -> None:
    """PostgreSQL gets a columnar reader (a libpq URI with the same options); SQLite never
    does: the driver's own copy of SQLite would undo this process's file locks."""
    from sqlalchemy.engine import make_url

    from monitor.store.arrow import ArrowReader

    for url in ("sqlite://", "sqlite:////tmp/x.db"):
        assert ArrowReader.for_url(make_url(url), make_engine(url).dialect) is None
    pg = make_url("postgresql+psycopg://u:pw@h:5433/db?sslmode=require")
    reader = ArrowReader.for_url(pg, make_engine(pg.render_as_string(hide_password=False)).dialect)
    assert reader is not None and reader.target == "postgresql://u:pw@h:5433/db?sslmode=require"


def test_detector_benchmark_copies_its_counts_to_postgresql_and_ticks_the_same(tmp_path, pg_url: str) -> None:
    """`finsent bench detect --database-url`: the counts copied into PostgreSQL (hour sums
    rebuilt there) give the cold and warm ticks the SQLite run gives."""
    from pipelines.bench_detect import run

    lite = run(keys=120, days=2, warm_ticks=2, db=str(tmp_path / "a.db"))
    pg = run(keys=120, days=2, warm_ticks=2, db=str(tmp_path / "b.db"), database_url=pg_url)
    assert lite["database"].startswith("SQLite") and pg["database"].startswith("PostgreSQL")
    assert lite["minute_count_rows"] == pg["minute_count_rows"] > 0
    assert lite["keys_evaluated_cold"] == pg["keys_evaluated_cold"] > 0
    assert lite["keys_evaluated_warm_last"] == pg["keys_evaluated_warm_last"]
    # A fresh detector on each database says the same about every key it judges.
    from monitor.config import Settings
    from monitor.detect.runner import forget, tick

    now = datetime(2024, 5, 13, 15, 2, tzinfo=UTC)
    said = []
    for url in (f"sqlite:///{tmp_path / 'b.db'}", pg_url):
        engine = make_engine(url)
        forget(engine)
        sigs = tick(engine, Settings(database_url=url), now, lock=False)  # type: ignore[call-arg]
        said.append(sorted((s.key.kind, s.key.value, s.spiking, s.calm, repr(s.numbers)) for s in sigs))
        engine.dispose()
    assert said[0] == said[1] and len(said[0]) > 0


def test_detector_benchmark_names_a_missing_postgresql_database_without_a_traceback(tmp_path, pg_url: str) -> None:
    from click.testing import CliRunner
    from sqlalchemy.engine import make_url

    from pipelines.bench_detect import command

    missing = make_url(pg_url).set(database="finsent_no_such_db", password="s3cret")
    url = missing.render_as_string(hide_password=False)
    result = CliRunner().invoke(
        command, ["--keys", "20", "--days", "1", "--db", str(tmp_path / "b.db"), "--database-url", url]
    )
    assert result.exit_code == 1
    assert 'database "finsent_no_such_db" does not exist' in result.output
    assert "is not reachable" in result.output and "s3cret" not in result.output
    assert "Traceback" not in result.output
