"""The repository: one transaction per batch, idempotent by document id.

`write_batch` inserts the batch's new documents, their entities, their near-duplicate
bands and dead letters, and bumps the per-minute counts only for rows that were really
inserted, all in one transaction. Replaying a batch therefore changes nothing, which is
what lets the consumer commit offsets after the store and still count every message once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from monitor.classify.base import Prediction
from monitor.ingest.schemas import Document, Rejection
from monitor.store.keys import row_keys
from monitor.store.schema import (
    dead_letters,
    document_entities,
    documents,
    entity_sightings,
    hour_counts,
    minute_counts,
    near_dup_bands,
)

log = logging.getLogger(__name__)

COUNT_COLUMNS = ("total", "negative", "neutral", "positive", "novel_total", "novel_negative")
_CHUNK = 2000
NOVELTY_LOCK_KEY = 0x6E6F76656C7479  # "novelty": the transaction-scoped advisory lock of band lookups


@dataclass(frozen=True, slots=True)
class Classified:
    doc: Document
    pred: Prediction
    entities: tuple[str, ...]
    bands: tuple[str, ...] = ()


@dataclass(slots=True)
class BatchResult:
    inserted: int = 0
    duplicates: int = 0  # already stored (replayed messages)
    near_duplicates: int = 0  # new, but a near-copy of an earlier text
    dead_letters: int = 0
    inserted_ids: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def epoch_hour(ts: datetime) -> int:
    """Whole hours since 1970-01-01 UTC (a naive time is taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp()) // 3600


def hour_totals(
    rows: Iterable[tuple[str, str, datetime, Mapping[Any, Any]]],
) -> dict[tuple[str, str, int], dict[str, int]]:
    """(key_kind, key_value, minute, counts) rows summed per key and epoch hour."""
    acc: dict[tuple[str, str, int], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNT_COLUMNS, 0))
    for kind, value, minute, counts in rows:
        row = acc[(kind, value, epoch_hour(minute))]
        for c in COUNT_COLUMNS:
            row[c] += int(counts.get(c) or 0)
    return acc


def add_hour_counts(conn: Connection, deltas: Mapping[tuple[str, str, int], Mapping[str, int]], sign: int = 1) -> None:
    """Add (or, with sign -1, take away) per-hour deltas in `hour_counts`, in key order."""
    rows = [
        {"key_kind": k, "key_value": v, "hour": h, **{c: sign * int(d[c]) for c in COUNT_COLUMNS}}
        for (k, v, h), d in sorted(deltas.items())
        if any(d.values())
    ]
    add_counts(conn, hour_counts, ["hour", "key_kind", "key_value"], rows)


def add_counts(conn: Connection, table: Any, key: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert count rows into `table` (minute, hour or roll-up counts): a new key is inserted,
    an existing one gets the row's counts added to its own."""
    if not rows:
        return
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={c: getattr(table.c, c) + getattr(stmt.excluded, c) for c in COUNT_COLUMNS},
    )
    conn.execute(stmt, list(rows))


def _delta(sentiment: str | None, novel: bool, sign: int = 1) -> dict[str, int]:
    d = dict.fromkeys(COUNT_COLUMNS, 0)
    d["total"] = sign
    if sentiment in ("negative", "neutral", "positive"):
        d[sentiment] = sign
    if novel:
        d["novel_total"] = sign
        if sentiment == "negative":
            d["novel_negative"] = sign
    return d


class CountAccumulator:
    """Per (key, minute) deltas for one batch, applied as sorted upserts (no deadlocks)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, datetime], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(COUNT_COLUMNS, 0)
        )

    def add(self, published_at: datetime, topic: str | None, entities: Iterable[str], delta: dict[str, int]) -> None:
        minute = _minute(published_at)
        for kind, value in row_keys(topic, entities):
            self._bump((kind, value[:128], minute), delta)

    def add_document(
        self,
        published_at: datetime,
        topic: str | None,
        sentiment: str | None,
        entities: Iterable[str],
        entity_sentiment: Mapping[str, str] | None,
        novel: bool,
        sign: int = 1,
        novel_only: bool = False,
    ) -> None:
        """One document's counts: the feed and its topic with the document's sentiment,
        each company with the sentiment toward it (the document's where none was read)."""
        minute = _minute(published_at)
        per_company = entity_sentiment or {}
        for kind, value in row_keys(topic, entities):
            s = per_company.get(value, sentiment) if kind == "entity" else sentiment
            d = _delta(s, novel, sign)
            if novel_only:
                d["total"] = d["negative"] = d["neutral"] = d["positive"] = 0
            self._bump((kind, value[:128], minute), d)

    def _bump(self, key: tuple[str, str, datetime], delta: dict[str, int]) -> None:
        row = self._rows[key]
        for k, v in delta.items():
            row[k] += v

    def apply(self, conn: Connection) -> None:
        if not self._rows:
            return
        rows = [
            {"key_kind": k, "key_value": v, "minute": m, **counts}
            for (k, v, m), counts in sorted(self._rows.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2]))
            if any(counts.values())
        ]
        if not rows:
            return
        add_counts(conn, minute_counts, ["key_kind", "key_value", "minute"], rows)
        # The hourly sums move in the same transaction, so they never disagree with the minutes.
        add_hour_counts(conn, hour_totals((k, v, m, c) for (k, v, m), c in self._rows.items()))


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """Bounded keys: a symbol outside `known` (the watchlist, the company universe) becomes a
    company key only from its `min_sightings`-th sighting, counted across the cluster in
    `entity_sightings`. Until then it is dropped from the document's entities, so a one-off
    `$XYZ` creates no count rows and no detector key. 1 admits every symbol."""

    known: frozenset[str] = frozenset()
    min_sightings: int = 1


class Store:
    def __init__(
        self, engine: Engine, novelty_horizon: timedelta = timedelta(hours=6), keys: KeyPolicy | None = None
    ) -> None:
        self.engine = engine
        self.horizon = novelty_horizon
        self.keys = keys or KeyPolicy()

    def write_batch(
        self,
        items: Sequence[Classified],
        rejections: Sequence[Rejection],
        now: datetime,
        records: Mapping[tuple[str, int, int], Any] | None = None,
    ) -> BatchResult:
        with self.engine.begin() as conn:
            return write_batch(conn, items, rejections, now, self.horizon, records, self.keys)

    def prune_bands(self, older_than: datetime) -> int:
        """Forget near-duplicate bands beyond the horizon (they can no longer match)."""
        with self.engine.begin() as conn:
            return conn.execute(delete(near_dup_bands).where(near_dup_bands.c.published_at < older_than)).rowcount or 0


def write_batch(
    conn: Connection,
    items: Sequence[Classified],
    rejections: Sequence[Rejection],
    now: datetime,
    horizon: timedelta,
    records: Mapping[tuple[str, int, int], Any] | None = None,
    keys: KeyPolicy | None = None,
) -> BatchResult:
    """`records` maps (topic, partition, offset) to the consumed record (`value`, `key`,
    `timestamp`): a dead letter keeps the record as it came, for `finsent dlq replay`."""
    result = BatchResult()
    if conn.dialect.name == "postgresql" and horizon > timedelta(0) and any(it.bands for it in items):
        # Workers storing copies of one story at the same moment must see each other's
        # bands: without this, each (READ COMMITTED) looks up the bands before the other
        # committed and both copies become originals. Taken first, before any row lock,
        # so it cannot deadlock with the document inserts; held to commit. Every batch
        # already serialises on its minute's feed-wide count row, so this costs little.
        conn.execute(select(func.pg_advisory_xact_lock(NOVELTY_LOCK_KEY)))
    # A batch may carry the same id twice (a producer retry): the first one wins.
    unique: dict[str, Classified] = {}
    for it in items:
        unique.setdefault(it.doc.id, it)
    result.duplicates += len(items) - len(unique)

    inserted_ids: set[str] = set()
    rows = [_doc_row(it, now) for it in unique.values()]
    if rows:
        # executemany with RETURNING: SQLAlchemy batches it ("insertmanyvalues") with one cached compile.
        stmt = _insert(conn, documents).on_conflict_do_nothing(index_elements=["id"]).returning(documents.c.id)
        inserted_ids.update(r[0] for r in conn.execute(stmt, rows))
    new = [it for it in unique.values() if it.doc.id in inserted_ids]
    if keys is not None and keys.min_sightings > 1:
        new = _admit_entities(conn, new, keys, now)
    result.inserted = len(new)
    result.duplicates += len(unique) - len(new)
    result.inserted_ids = [it.doc.id for it in new]

    counts = CountAccumulator()
    dup_of = _near_duplicates(conn, new, horizon, counts)
    result.near_duplicates = len(dup_of)
    if dup_of:
        conn.execute(
            update(documents).where(documents.c.id == bindparam("b_id")).values(duplicate_of=bindparam("b_dup")),
            [{"b_id": k, "b_dup": v} for k, v in dup_of.items()],
        )
    for it in new:
        counts.add_document(
            it.doc.published_at,
            it.pred.topic,
            it.pred.sentiment,
            it.entities,
            entity_sentiments(it),
            it.doc.id not in dup_of,
        )

    ent_rows = []
    for it in new:
        for e in it.entities:
            es = it.pred.entity(e)
            ent_rows.append(
                {
                    "document_id": it.doc.id,
                    "entity": e[:64],
                    "published_at": it.doc.published_at,
                    "sentiment": es.sentiment if es else it.pred.sentiment,
                    "sentiment_score": es.sentiment_score if es else it.pred.sentiment_score,
                }
            )
    if ent_rows:
        conn.execute(_insert(conn, document_entities).on_conflict_do_nothing(), ent_rows)
    counts.apply(conn)

    result.rejections = list(rejections)
    if rejections:
        dl_rows = []
        for r in rejections:
            rec = (records or {}).get((r.topic, r.partition, r.offset))
            dl_rows.append(
                {
                    "received_at": now,
                    "topic": r.topic,
                    "partition": r.partition,
                    "offset": r.offset,
                    "reason": r.reason[:2000],
                    "raw": rec.value if rec is not None and rec.value is not None else r.raw,
                    "key": rec.key if rec is not None else None,
                    "record_time": rec.timestamp if rec is not None else None,
                }
            )
        res = conn.execute(
            _insert(conn, dead_letters)
            .on_conflict_do_nothing(index_elements=["topic", "partition", "offset"])
            .returning(dead_letters.c.id),
            dl_rows,
        )
        result.dead_letters = len(res.fetchall())
    return result


def entity_sentiments(it: Classified) -> dict[str, str]:
    """{symbol: sentiment toward it} for the document's linked companies that have one."""
    out = {}
    for e in it.entities:
        es = it.pred.entity(e)
        if es is not None:
            out[e[:128]] = es.sentiment
    return out


def _admit_entities(conn: Connection, new: list[Classified], keys: KeyPolicy, now: datetime) -> list[Classified]:
    """Drop the symbols not yet seen `min_sightings` times from new documents' entities.

    The sightings are upserted first (a row lock per symbol); the returned total tells
    which ordinals this batch's sightings have, in event-time order, so the decision is
    exact across workers and does not depend on batch boundaries.
    """
    per_symbol: dict[str, list[Classified]] = defaultdict(list)
    for it in sorted(new, key=lambda it: (it.doc.published_at, it.doc.id)):
        for e in dict.fromkeys(it.entities):
            if e not in keys.known:
                per_symbol[e[:64]].append(it)
    if not per_symbol:
        return new
    stmt = _insert(conn, entity_sightings)
    stmt = stmt.on_conflict_do_update(
        index_elements=["symbol"],
        set_={
            "sightings": entity_sightings.c.sightings + stmt.excluded.sightings,
            "last_seen": stmt.excluded.last_seen,
        },
    ).returning(entity_sightings.c.symbol, entity_sightings.c.sightings)
    totals: dict[str, int] = {}
    for sym in sorted(per_symbol):  # sorted: two workers lock the rows in one order
        its = per_symbol[sym]
        seen = max(it.doc.published_at for it in its)
        row = conn.execute(stmt, {"symbol": sym, "first_seen": seen, "last_seen": seen, "sightings": len(its)}).first()
        totals[sym] = int(row[1]) if row is not None else len(its)
    dropped: dict[str, set[str]] = defaultdict(set)
    for sym, its in per_symbol.items():
        first = totals[sym] - len(its) + 1  # the ordinal of this batch's first sighting
        for ordinal, it in enumerate(its, start=first):
            if ordinal < keys.min_sightings:
                dropped[it.doc.id].add(sym)
    if not dropped:
        return new
    out = []
    for it in new:
        gone = dropped.get(it.doc.id)
        if gone:
            it = replace(it, entities=tuple(e for e in it.entities if e[:64] not in gone))
            conn.execute(update(documents).where(documents.c.id == it.doc.id).values(entities=list(it.entities)))
        out.append(it)
    return out


def _doc_row(it: Classified, now: datetime) -> dict[str, Any]:
    d, p = it.doc, it.pred
    return {
        "id": d.id,
        "text": d.text,
        "title": d.title,
        "source": d.source,
        "url": d.url,
        "lang": d.lang,
        "kind": d.kind,
        "published_at": d.published_at,
        "ingested_at": now,
        "topic": p.topic,
        "topic_score": p.topic_score,
        "sentiment": p.sentiment,
        "sentiment_score": p.sentiment_score,
        "probs": p.probs,
        "model_version": p.model_version,
        "entities": list(it.entities),
        "entity_sentiment": entity_sentiments(it) or None,
        "chunks": p.chunks,
        "cut": p.cut or None,
        "meta": d.meta or None,
        "kafka_topic": d.kafka_topic,
        "kafka_partition": d.kafka_partition,
        "kafka_offset": d.kafka_offset,
        "duplicate_of": None,
    }


def _near_duplicates(
    conn: Connection, new: Sequence[Classified], horizon: timedelta, counts: CountAccumulator
) -> dict[str, str]:
    """Mark each new document that is a near-copy of an earlier one (by event time).

    The earliest document of a cluster is its original whatever order documents arrive
    in: when an earlier copy arrives after a later one was counted as the original, the
    later one is demoted (its novel counts move to the earlier one). So novelty counts do
    not depend on batch sizes or arrival order.
    """
    with_bands = sorted((it for it in new if it.bands), key=lambda it: (it.doc.published_at, it.doc.id))
    if not with_bands or horizon <= timedelta(0):
        return {}
    all_bands = sorted({b for it in with_bands for b in it.bands})
    lo = with_bands[0].doc.published_at - horizon
    hi = with_bands[-1].doc.published_at + horizon
    existing: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    cols = (near_dup_bands.c.band, near_dup_bands.c.published_at, near_dup_bands.c.document_id)
    in_time = and_(near_dup_bands.c.published_at >= lo, near_dup_bands.c.published_at <= hi)
    if conn.dialect.name == "postgresql":
        # One array parameter instead of thousands of literals: far cheaper to send and plan.
        from sqlalchemy.dialects.postgresql import ARRAY

        arr = bindparam("bands", all_bands, type_=ARRAY(near_dup_bands.c.band.type))
        queries = [select(*cols).where(and_(near_dup_bands.c.band == func.any(arr), in_time))]
    else:
        queries = [
            select(*cols).where(and_(near_dup_bands.c.band.in_(all_bands[i : i + _CHUNK]), in_time))
            for i in range(0, len(all_bands), _CHUNK)
        ]
    for q in queries:
        for band, ts, doc_id in conn.execute(q):
            existing[band].append((ts, doc_id))

    dup_of: dict[str, str] = {}
    demote: dict[str, str] = {}
    band_rows = []
    for it in with_bands:
        me = (it.doc.published_at, it.doc.id)
        matches = {m for b in it.bands for m in existing.get(b, ()) if abs(m[0] - me[0]) <= horizon and m[1] != me[1]}
        earlier = [m for m in matches if m < me]
        if earlier:
            dup_of[it.doc.id] = min(earlier)[1]
        for m in matches:
            if m > me:
                demote[m[1]] = it.doc.id
        if it.doc.id in dup_of:
            continue  # a cluster is represented by its original: copies add no bands (keeps lookups small)
        for b in it.bands:
            existing[b].append(me)
            band_rows.append({"band": b, "document_id": it.doc.id, "published_at": it.doc.published_at})
    # New documents are visited in event-time order, so only already-stored ones can be later.
    if demote:
        _demote_originals(conn, demote, counts)
    if band_rows and conn.dialect.name == "postgresql":
        # Tens of thousands of tiny rows per batch: one statement over arrays beats executemany.
        conn.execute(
            text(
                "INSERT INTO near_dup_bands (band, document_id, published_at) "
                "SELECT * FROM unnest(CAST(:b AS text[]), CAST(:d AS text[]), CAST(:t AS timestamptz[])) "
                "ON CONFLICT DO NOTHING"
            ),
            {
                "b": [r["band"] for r in band_rows],
                "d": [r["document_id"] for r in band_rows],
                "t": [r["published_at"] for r in band_rows],
            },
        )
    elif band_rows:
        conn.execute(_insert(conn, near_dup_bands).on_conflict_do_nothing(), band_rows)
    return dup_of


def _demote_originals(conn: Connection, demote: dict[str, str], counts: CountAccumulator) -> None:
    # A conditional UPDATE ... RETURNING claims each demotion: when two workers race to
    # demote the same document, the row lock makes the second one match nothing, so its
    # novel counts are moved exactly once.
    candidates = sorted(demote)
    originals = {
        r[0]
        for i in range(0, len(candidates), _CHUNK)
        for r in conn.execute(
            select(documents.c.id).where(
                and_(documents.c.id.in_(candidates[i : i + _CHUNK]), documents.c.duplicate_of.is_(None))
            )
        )
    }
    for doc_id in sorted(originals):
        row = conn.execute(
            update(documents)
            .where(and_(documents.c.id == doc_id, documents.c.duplicate_of.is_(None)))
            .values(duplicate_of=demote[doc_id])
            .returning(
                documents.c.published_at,
                documents.c.topic,
                documents.c.sentiment,
                documents.c.entities,
                documents.c.entity_sentiment,
            )
        ).first()
        if row is None:
            continue
        ts, topic, sentiment, ents, ent_sent = row
        counts.add_document(ts, topic, sentiment, ents or (), ent_sent, True, sign=-1, novel_only=True)


def recount(conn: Connection) -> dict[tuple[str, str, datetime], dict[str, int]]:
    """Minute counts recomputed from the documents table (for checks and `finsent stats`)."""
    acc = CountAccumulator()
    for _id, ts, topic, sentiment, ents, ent_sent, dup in conn.execute(
        select(
            documents.c.id,
            documents.c.published_at,
            documents.c.topic,
            documents.c.sentiment,
            documents.c.entities,
            documents.c.entity_sentiment,
            documents.c.duplicate_of,
        )
    ):
        acc.add_document(ts, topic, sentiment, ents or (), ent_sent, dup is None)
    return {k: v for k, v in acc._rows.items() if any(v.values())}


def stored_counts(conn: Connection) -> dict[tuple[str, str, datetime], dict[str, int]]:
    out = {}
    for row in conn.execute(select(minute_counts)).mappings():
        counts = {c: row[c] for c in COUNT_COLUMNS}
        if any(counts.values()):
            out[(row["key_kind"], row["key_value"], row["minute"])] = counts
    return out


def insert_counts(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert new minute_counts rows (dicts with every column) and add them to their hours:
    for counts loaded around the store (tests, benchmarks, imports)."""
    if not rows:
        return
    conn.execute(minute_counts.insert(), list(rows))
    add_hour_counts(conn, hour_totals((r["key_kind"], r["key_value"], r["minute"], r) for r in rows))


def rebuild_hour_counts(conn: Connection) -> int:
    """Recompute `hour_counts` from `minute_counts` (for counts written around the store,
    such as a benchmark's bulk load); returns the number of hour rows."""
    mc = minute_counts.c
    if conn.dialect.name == "sqlite":
        epoch = cast(func.strftime("%s", mc.minute), BigInteger)
    else:
        epoch = cast(func.floor(func.extract("epoch", mc.minute)), BigInteger)
    hour = (epoch // 3600).label("hour")
    sums = [func.sum(getattr(mc, c)) for c in COUNT_COLUMNS]
    conn.execute(delete(hour_counts))
    src = select(mc.key_kind, mc.key_value, hour, *sums).group_by(mc.key_kind, mc.key_value, literal_column("hour"))
    conn.execute(hour_counts.insert().from_select(["key_kind", "key_value", "hour", *COUNT_COLUMNS], src))
    return int(conn.execute(select(func.count()).select_from(hour_counts)).scalar_one())


def hour_count_mismatches(conn: Connection) -> dict[tuple[str, str, int], tuple[dict[str, int], dict[str, int]]]:
    """Hours whose `hour_counts` row differs from the sum of its minute rows:
    {(kind, value, hour): (stored, from minutes)}; empty when the two agree."""
    want = hour_totals(
        (r["key_kind"], r["key_value"], r["minute"], r) for r in conn.execute(select(minute_counts)).mappings()
    )
    have = {
        (r["key_kind"], r["key_value"], int(r["hour"])): {c: int(r[c]) for c in COUNT_COLUMNS}
        for r in conn.execute(select(hour_counts)).mappings()
    }
    zero = dict.fromkeys(COUNT_COLUMNS, 0)
    return {
        k: (have.get(k, zero), dict(want.get(k, zero)))
        for k in set(want) | set(have)
        if have.get(k, zero) != dict(want.get(k, zero))
    }


def table_count(conn: Connection, table: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
