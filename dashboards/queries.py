"""Read-only queries behind the dashboard pages (SQLAlchemy Core, SQLite and PostgreSQL).

Rules kept here so the pages cannot break them:

* every value a user typed reaches the database as a bound parameter, never as SQL text;
  substring searches go through `contains(..., autoescape=True)` so `%`, `_` and the
  escape character match themselves;
* charts and KPIs read the per-minute counts (`minute_counts`), bucketed in SQL, never a
  scan of raw documents; only the document lists (drill-down, evidence, explorer) touch
  `documents`, always bounded by time and a row limit;
* nothing here imports streamlit, so `pipelines/bench_dashboard.py` times exactly these
  functions.

Times in and out are timezone-aware UTC; the pages convert for display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    and_,
    case,
    cast,
    func,
    inspect,
    literal,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from monitor.store.retention import counts_source
from monitor.store.schema import (
    alerts,
    count_rollups,
    dead_letters,
    document_entities,
    documents,
    minute_counts,
    silences,
)

Bind = Engine | Connection

RESOLUTIONS: dict[str, int] = {"minute": 60, "5 min": 300, "hour": 3600, "day": 86400}
MAX_POINTS = 2000  # per series; a finer resolution over a longer range is coarsened
DOC_LIMIT = 1000
REQUIRED_TABLES = (
    "documents",
    "document_entities",
    "minute_counts",
    "count_rollups",
    "alerts",
    "silences",
    "dead_letters",
)

COUNT_COLS = ("total", "negative", "neutral", "positive", "novel_total", "novel_negative")
DOC_COLUMNS = (
    "published_at",
    "source",
    "kind",
    "topic",
    "sentiment",
    "sentiment_score",
    "entities",
    "title",
    "text",
    "url",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "duplicate_of",
    "model_version",
    "id",
)


def _connect(bind: Bind) -> Any:
    return bind.connect() if isinstance(bind, Engine) else _Borrowed(bind)


class _Borrowed:
    """A caller's connection used as a context manager without closing it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        return self.conn

    def __exit__(self, *exc: Any) -> None:
        return None


def _frame(conn: Connection, stmt: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    res = conn.execute(stmt)
    rows = res.all()
    return pd.DataFrame(rows, columns=list(columns or res.keys()))


# --- schema / freshness --------------------------------------------------------------------


def missing_tables(bind: Bind) -> list[str]:
    """Tables the dashboard needs that the database lacks (empty: the schema is there)."""
    with _connect(bind) as conn:
        have = set(inspect(conn).get_table_names())
    return [t for t in REQUIRED_TABLES if t not in have]


def data_bounds(bind: Bind) -> tuple[datetime | None, datetime | None]:
    """First and last minute with any document (from the `all` counts: an index range)."""
    mc, rc = minute_counts.c, count_rollups.c
    q = select(func.min(mc.minute), func.max(mc.minute)).where(mc.key_kind == "all", mc.key_value == "*")
    # Purged minutes live on in the roll-ups: the data starts at the oldest of them.
    q_old = select(func.min(rc.bucket)).where(rc.key_kind == "all", rc.key_value == "*")
    with _connect(bind) as conn:
        lo, hi = conn.execute(q).one()
        old = conn.execute(q_old).scalar()
    lo, hi, old = _utc(lo), _utc(hi), _utc(old)
    if old is not None and (lo is None or old < lo):
        lo = old
    return lo, hi


def _utc(x: Any) -> datetime | None:
    if x is None:
        return None
    if isinstance(x, str):  # SQLite aggregates bypass the column type
        x = datetime.fromisoformat(x)
    return x.replace(tzinfo=UTC) if x.tzinfo is None else x.astimezone(UTC)


# --- KPIs ----------------------------------------------------------------------------------


def kpis(bind: Bind, start: datetime, end: datetime) -> dict[str, Any]:
    """Headline numbers for [start, end): documents and negative share from the minute
    counts, firing alerts and dead letters from their (small) tables."""
    mc = minute_counts.c
    q = select(func.coalesce(func.sum(mc.total), 0), func.coalesce(func.sum(mc.negative), 0)).where(
        mc.key_kind == "all", mc.key_value == "*", mc.minute >= start, mc.minute < end
    )
    with _connect(bind) as conn:
        total, negative = conn.execute(q).one()
        firing = conn.execute(select(func.count()).select_from(alerts).where(alerts.c.state == "firing")).scalar_one()
        dlq = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
        dlq_range = conn.execute(
            select(func.count())
            .select_from(dead_letters)
            .where(dead_letters.c.received_at >= start, dead_letters.c.received_at < end)
        ).scalar_one()
    total, negative = int(total or 0), int(negative or 0)
    return {
        "documents": total,
        "negative": negative,
        "negative_share": (negative / total) if total else None,
        "firing_alerts": int(firing),
        "dead_letters": int(dlq),
        "dead_letters_in_range": int(dlq_range),
    }


# --- time series from minute_counts --------------------------------------------------------


def effective_step(start: datetime, end: datetime, step_seconds: int) -> int:
    """`step_seconds`, coarsened to a listed resolution so a series has <= MAX_POINTS."""
    span = max((end - start).total_seconds(), 60)
    for s in sorted(set(RESOLUTIONS.values()) | {step_seconds}):
        if s >= step_seconds and span / s <= MAX_POINTS:
            return s
    return max(RESOLUTIONS.values()) * max(1, int(span // (MAX_POINTS * 86400)) + 1)


def _epoch(conn: Connection, col: Any) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite":
        return cast(func.strftime("%s", col), BigInteger)
    return cast(func.floor(func.extract("epoch", col)), BigInteger)


def series(
    bind: Bind,
    key_kind: str,
    start: datetime,
    end: datetime,
    step_seconds: int,
    keys: Sequence[str] | None = None,
    offset_seconds: int = 0,
) -> pd.DataFrame:
    """Counts per (bucket, key) for `key_kind` ('all', 'topic' or 'entity') in [start, end).

    Buckets are `step_seconds` wide, aligned to the display time zone by `offset_seconds`
    (its UTC offset), computed in SQL; columns: bucket (UTC), key, the count columns and
    negative_share."""
    # Minute counts and, where the retention job has rolled them up, hourly and daily
    # counts: every document is in exactly one of them, so long views stay exact.
    mc = counts_source().c
    with _connect(bind) as conn:
        ep = _epoch(conn, mc.at)
        step = literal(int(step_seconds), BigInteger)
        off = literal(int(offset_seconds), BigInteger)
        bucket = (((ep + off) // step) * step - off).label(
            "bucket"
        )  # floor division (SQLAlchemy 2 `/` is true division)
        cond = [mc.key_kind == key_kind, mc.at >= start, mc.at < end]
        if keys is not None:
            if not keys:
                return _empty_series()
            cond.append(mc.key_value.in_(list(keys)))
        q = (
            select(bucket, mc.key_value.label("key"), *[func.sum(getattr(mc, c)).label(c) for c in COUNT_COLS])
            .where(*cond)
            .group_by(bucket, mc.key_value)
            .order_by(bucket, mc.key_value)
        )
        df = _frame(conn, q)
    if df.empty:
        return _empty_series()
    df["bucket"] = pd.to_datetime(df["bucket"].astype("int64"), unit="s", utc=True)
    for c in COUNT_COLS:
        df[c] = df[c].astype("int64")
    df["negative_share"] = df["negative"] / df["total"].where(df["total"] > 0)
    return df


def _empty_series() -> pd.DataFrame:
    df = pd.DataFrame({"bucket": pd.Series([], dtype="datetime64[ns, UTC]"), "key": pd.Series([], dtype=str)})
    for c in COUNT_COLS:
        df[c] = pd.Series([], dtype="int64")
    df["negative_share"] = pd.Series([], dtype=float)
    return df


def key_totals(bind: Bind, key_kind: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Per key of `key_kind`: documents, negative and negative share in [start, end),
    busiest first."""
    mc = minute_counts.c
    q = (
        select(
            mc.key_value.label("key"),
            func.sum(mc.total).label("total"),
            func.sum(mc.negative).label("negative"),
            func.sum(mc.positive).label("positive"),
            func.max(mc.minute).label("last_seen"),
        )
        .where(mc.key_kind == key_kind, mc.minute >= start, mc.minute < end)
        .group_by(mc.key_value)
        .order_by(func.sum(mc.total).desc(), mc.key_value)
    )
    with _connect(bind) as conn:
        df = _frame(conn, q)
    if df.empty:
        return pd.DataFrame(
            {
                "key": pd.Series([], dtype=str),
                "total": pd.Series([], dtype="int64"),
                "negative": pd.Series([], dtype="int64"),
                "positive": pd.Series([], dtype="int64"),
                "last_seen": pd.Series([], dtype="datetime64[ns, UTC]"),
                "negative_share": pd.Series([], dtype=float),
            }
        )
    df["last_seen"] = pd.to_datetime(df["last_seen"].map(_utc), utc=True)
    df["negative_share"] = df["negative"] / df["total"].where(df["total"] > 0)
    return df


def top_movers(
    bind: Bind,
    end: datetime,
    window: timedelta,
    baseline: timedelta,
    *,
    min_window_total: int = 5,
    limit: int = 20,
) -> pd.DataFrame:
    """Negative share in the last `window` before `end` against the trailing `baseline`
    before that, per topic and entity; biggest rise first."""
    mc = minute_counts.c
    w_start = end - window
    b_start = w_start - baseline
    in_win = mc.minute >= w_start
    q = (
        select(
            mc.key_kind.label("kind"),
            mc.key_value.label("key"),
            func.sum(case((in_win, mc.total), else_=0)).label("window_total"),
            func.sum(case((in_win, mc.negative), else_=0)).label("window_negative"),
            func.sum(case((in_win, 0), else_=mc.total)).label("baseline_total"),
            func.sum(case((in_win, 0), else_=mc.negative)).label("baseline_negative"),
        )
        .where(mc.key_kind.in_(("topic", "entity")), mc.minute >= b_start, mc.minute < end)
        .group_by(mc.key_kind, mc.key_value)
    )
    with _connect(bind) as conn:
        df = _frame(conn, q)
    cols = [
        "kind",
        "key",
        "window_share",
        "baseline_share",
        "change",
        "lift",
        "window_negative",
        "window_total",
        "baseline_negative",
        "baseline_total",
    ]
    if df.empty:
        return pd.DataFrame(columns=cols)
    for c in ("window_total", "window_negative", "baseline_total", "baseline_negative"):
        df[c] = df[c].fillna(0).astype("int64")
    df = df[df["window_total"] >= min_window_total].copy()
    df["window_share"] = df["window_negative"] / df["window_total"]
    df["baseline_share"] = df["baseline_negative"] / df["baseline_total"].where(df["baseline_total"] > 0)
    df["change"] = df["window_share"] - df["baseline_share"].fillna(0)
    df["lift"] = df["window_share"] / df["baseline_share"].where(df["baseline_share"] > 0)
    df = df.sort_values(["change", "window_total"], ascending=[False, False]).head(limit)
    return df[cols].reset_index(drop=True)


# --- companies ----------------------------------------------------------------------------

MIN_RANK_ITEMS = 5  # fewer items in range than this: listed, but after the ranked companies
PRIOR_ITEMS = 5.0  # pseudo-items of the population's share that temper small counts in the ranking
RANK_ORDERS = (
    "alerts, then negative-share lift",
    "negative-share lift",
    "volume against norm",
    "items",
    "negative share",
    "symbol",
)
RANK_COLUMNS = (
    "key",
    "firing",
    "total",
    "negative",
    "negative_share",
    "baseline_total",
    "baseline_negative",
    "baseline_share",
    "lift",
    "lift_score",
    "norm",
    "volume_ratio",
    "last_seen",
)


def company_ranking(
    bind: Bind, start: datetime, end: datetime, baseline: timedelta = timedelta(days=30)
) -> pd.DataFrame:
    """Every company with items in [start, end) or in the `baseline` before `start`: its
    items and negatives in range (counted on the company's own sentiment), its negative
    share against its share over the baseline (`lift`), its items against its norm (the
    baseline's rate times the range's length, `volume_ratio`), and whether an entity alert
    is firing for it now.

    One grouped query over the minute counts and their roll-ups, one over firing alerts:
    the cost does not grow with a query per company. `lift_score` orders by lift with
    both shares drawn toward the population's baseline share by `PRIOR_ITEMS`
    pseudo-items, so one negative item of one does not outrank a real surge and a zero
    baseline still ranks. The baseline is clipped to the stored data: a stream that began
    a day before `start` has a one-day norm, not a thirty-day one."""
    src = counts_source().c
    b_start = start - baseline
    in_range = src.at >= start
    q = (
        select(
            src.key_value.label("key"),
            func.sum(case((in_range, src.total), else_=0)).label("total"),
            func.sum(case((in_range, src.negative), else_=0)).label("negative"),
            func.sum(case((in_range, 0), else_=src.total)).label("baseline_total"),
            func.sum(case((in_range, 0), else_=src.negative)).label("baseline_negative"),
            func.max(case((in_range, src.at))).label("last_seen"),
        )
        .where(src.key_kind == "entity", src.at >= b_start, src.at < end)
        .group_by(src.key_value)
    )
    a = alerts.c
    q_alerts = (
        select(a.key_value.label("key"), func.count().label("firing"))
        .where(a.key_kind == "entity", a.state == "firing")
        .group_by(a.key_value)
    )
    with _connect(bind) as conn:
        df = _frame(conn, q)
        firing = {str(k): int(n) for k, n in conn.execute(q_alerts)}
    lo, _ = data_bounds(bind)
    if df.empty and not firing:
        return _empty_ranking()
    # A firing company without counts in the window still heads the list.
    extra = [k for k in firing if k not in set(df["key"])]
    if extra:
        df = pd.concat([df, pd.DataFrame({"key": extra})], ignore_index=True)
    for c in ("total", "negative", "baseline_total", "baseline_negative"):
        df[c] = df[c].fillna(0).astype("int64")
    df["last_seen"] = pd.to_datetime(
        df["last_seen"].map(lambda v: _utc(v) if isinstance(v, str | datetime) else None), utc=True
    )
    df["firing"] = df["key"].map(firing).fillna(0).astype("int64")
    df["negative_share"] = df["negative"] / df["total"].where(df["total"] > 0)
    df["baseline_share"] = df["baseline_negative"] / df["baseline_total"].where(df["baseline_total"] > 0)
    df["lift"] = df["negative_share"] / df["baseline_share"].where(df["baseline_share"] > 0)
    b_total, b_neg = int(df["baseline_total"].sum()), int(df["baseline_negative"].sum())
    r_total, r_neg = int(df["total"].sum()), int(df["negative"].sum())
    prior = b_neg / b_total if b_total else (r_neg / r_total if r_total else 0.2)
    prior = min(max(prior, 0.01), 0.99)
    k = PRIOR_ITEMS
    now_s = (df["negative"] + k * prior) / (df["total"] + k)
    base_s = (df["baseline_negative"] + k * prior) / (df["baseline_total"] + k)
    df["lift_score"] = now_s / base_s
    # The norm: the baseline's items per second over the part of it that has data.
    b_from = max(b_start, lo) if lo is not None else start
    b_seconds = (start - b_from).total_seconds()
    r_seconds = (end - start).total_seconds()
    if b_seconds > 0:
        df["norm"] = df["baseline_total"] * (r_seconds / b_seconds)
    else:
        df["norm"] = float("nan")
    df["volume_ratio"] = df["total"] / df["norm"].where(df["norm"] > 0)
    return sort_ranking(df[list(RANK_COLUMNS)], RANK_ORDERS[0])


def _empty_ranking() -> pd.DataFrame:
    df = pd.DataFrame({"key": pd.Series([], dtype=str)})
    for c in ("firing", "total", "negative", "baseline_total", "baseline_negative"):
        df[c] = pd.Series([], dtype="int64")
    for c in ("negative_share", "baseline_share", "lift", "lift_score", "norm", "volume_ratio"):
        df[c] = pd.Series([], dtype=float)
    df["last_seen"] = pd.Series([], dtype="datetime64[ns, UTC]")
    return df[list(RANK_COLUMNS)]


def sort_ranking(df: pd.DataFrame, order: str) -> pd.DataFrame:
    """`company_ranking`'s rows in one of `RANK_ORDERS`; companies with fewer than
    `MIN_RANK_ITEMS` items in range go after the others in the lift orders (their shares
    are noise), and ties fall to the busier company, then the symbol."""
    if df.empty:
        return df.reset_index(drop=True)
    d = df.assign(_enough=(df["total"] >= MIN_RANK_ITEMS), _fire=df["firing"] > 0)
    keys: list[tuple[str, bool]]
    if order == "negative-share lift":
        keys = [("_enough", False), ("lift_score", False)]
    elif order == "volume against norm":
        d["_vol"] = d["volume_ratio"].fillna(float("inf")).where(d["total"] > 0, 0.0)
        keys = [("_enough", False), ("_vol", False)]
    elif order == "items":
        keys = [("total", False)]
    elif order == "negative share":
        keys = [("_enough", False), ("negative_share", False)]
    elif order == "symbol":
        keys = [("key", True)]
    else:
        keys = [("_fire", False), ("_enough", False), ("lift_score", False)]
    keys += [("total", False), ("key", True)] if order != "symbol" else []
    d = d.sort_values([c for c, _ in keys], ascending=[a for _, a in keys], na_position="last", kind="stable")
    return d.drop(columns=[c for c in ("_enough", "_fire", "_vol") if c in d.columns]).reset_index(drop=True)


COMPANY_DOC_COLUMNS = (
    "published_at",
    "company_sentiment",
    "company_score",
    "sentiment",
    "sentiment_score",
    "source",
    "kind",
    "topic",
    "entities",
    "title",
    "text",
    "url",
    "duplicate_of",
    "id",
)


def _company_sentiment() -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The sentiment toward the company and its score; rows stored before per-company
    sentiment existed have NULL there, and the document's applies."""
    de, d = document_entities.c, documents.c
    return (
        func.coalesce(de.sentiment, d.sentiment),
        case((de.sentiment.is_(None), d.sentiment_score), else_=de.sentiment_score),
    )


def company_documents(
    bind: Bind,
    symbol: str,
    start: datetime,
    end: datetime,
    sentiments: Sequence[str] = (),
    limit: int = 500,
) -> pd.DataFrame:
    """A company's documents in [start, end), newest first, with the sentiment toward the
    company (`company_sentiment`, what its counts and alerts use) next to the document's;
    `sentiments` filters on the company's."""
    d, de = documents.c, document_entities.c
    c_sent, c_score = _company_sentiment()
    cols = {
        "published_at": d.published_at,
        "company_sentiment": c_sent,
        "company_score": c_score,
        "sentiment": d.sentiment,
        "sentiment_score": d.sentiment_score,
        "source": d.source,
        "kind": d.kind,
        "topic": d.topic,
        "entities": d.entities,
        "title": d.title,
        "text": d.text,
        "url": d.url,
        "duplicate_of": d.duplicate_of,
        "id": d.id,
    }
    cond: list[Any] = [de.entity == symbol, de.published_at >= start, de.published_at < end]
    if sentiments:
        cond.append(c_sent.in_(list(sentiments)))
    q = (
        select(*[v.label(k) for k, v in cols.items()])
        .select_from(document_entities.join(documents, d.id == de.document_id))
        .where(*cond)
        .order_by(de.published_at.desc(), d.id)
        .limit(max(1, min(int(limit), 100_000)))
    )
    with _connect(bind) as conn:
        return _docs_frame(_frame(conn, q, COMPANY_DOC_COLUMNS))


# --- alerts -----------------------------------------------------------------------------


def alert_list(
    bind: Bind,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    states: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    key_text: str | None = None,
    include_unfired: bool = False,
    limit: int = 500,
) -> pd.DataFrame:
    """Alerts overlapping [start, end), newest first, with the headline numbers flattened."""
    a = alerts.c
    q = select(alerts).order_by(a.started_at.desc(), a.id).limit(limit)
    if end is not None:
        q = q.where(a.started_at < end)
    if start is not None:
        q = q.where(or_(a.resolved_at.is_(None), a.resolved_at >= start))
    if states:
        q = q.where(a.state.in_(list(states)))
    if kinds:
        q = q.where(a.key_kind.in_(list(kinds)))
    if key_text:
        q = q.where(a.key_value.icontains(key_text, autoescape=True))
    if not include_unfired:
        q = q.where(or_(a.fired_at.is_not(None), a.state == "pending"))
    with _connect(bind) as conn:
        rows = list(conn.execute(q).mappings())
    out = []
    for r in rows:
        n = dict(r["numbers"] or {})
        meta = n.pop("_alert", {}) or {}
        out.append(
            {
                "id": r["id"],
                "state": r["state"],
                "severity": r["severity"],
                "kind": r["key_kind"],
                "key": r["key_value"],
                "topic": meta.get("topic"),
                "started_at": r["started_at"],
                "fired_at": r["fired_at"],
                "resolved_at": r["resolved_at"],
                "window_negative": _num(n, "negative", "window_negative"),
                "window_total": _num(n, "total", "window_total"),
                "window_share": _num(n, "share", "window_share"),
                "baseline_share": _num(n, "baseline_share", "baseline"),
                "lift": _num(n, "lift"),
                "p_value": _num(n, "p_value", "pvalue", "p"),
                "acknowledged_by": r["acknowledged_by"],
                "summary": r["summary"],
            }
        )
    cols = [
        "id",
        "state",
        "severity",
        "kind",
        "key",
        "topic",
        "started_at",
        "fired_at",
        "resolved_at",
        "window_negative",
        "window_total",
        "window_share",
        "baseline_share",
        "lift",
        "p_value",
        "acknowledged_by",
        "summary",
    ]
    df = pd.DataFrame(out, columns=cols)
    for c in ("started_at", "fired_at", "resolved_at"):
        df[c] = pd.to_datetime(df[c], utc=True)
    return df


def _num(n: dict[str, Any], *names: str) -> Any:
    for k in names:
        v = n.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return v
    return None


def alert_row(bind: Bind, alert_id: str) -> dict[str, Any] | None:
    """One alert row (numbers included), or None."""
    with _connect(bind) as conn:
        r = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
    if r is None:
        return None
    d = dict(r)
    numbers = dict(d.get("numbers") or {})
    meta = numbers.pop("_alert", {}) or {}
    d["numbers"] = numbers
    d["topic"] = meta.get("topic")
    d["window_start"] = meta.get("window_start")
    return d


def alert_evidence(bind: Bind, alert: dict[str, Any], limit: int = 20) -> pd.DataFrame:
    """The alert key's negative documents in its window, most confident first, with
    their Kafka coordinates (what the detector counted, near-duplicates marked)."""
    end = alert.get("resolved_at") or alert.get("updated_at") or datetime.now(UTC)
    ws = alert.get("window_start")
    start = datetime.fromisoformat(ws) if isinstance(ws, str) else alert["started_at"] - timedelta(minutes=15)
    start = min(start, alert["started_at"] - timedelta(minutes=1))
    d = documents.c
    cond: list[Any] = [d.published_at >= start, d.published_at <= end]
    q = select(*[getattr(d, c) for c in DOC_COLUMNS])
    score: ColumnElement[Any] = d.sentiment_score
    if alert["key_kind"] == "entity":
        # An entity alert counted the sentiment toward the company, not the document's.
        de = document_entities.c
        c_sent, score = _company_sentiment()
        q = q.join(document_entities, de.document_id == d.id)
        cond += [
            c_sent == "negative",
            de.entity == alert["key_value"],
            de.published_at >= start,
            de.published_at <= end,
        ]
    else:
        cond.append(d.sentiment == "negative")
        if alert["key_kind"] == "topic":
            cond.append(d.topic == alert["key_value"])
    q = q.where(*cond).order_by(score.desc(), d.published_at.desc(), d.id).limit(limit)
    with _connect(bind) as conn:
        return _docs_frame(_frame(conn, q, DOC_COLUMNS))


def silence_list(bind: Bind, now: datetime, include_expired: bool = False) -> pd.DataFrame:
    s = silences.c
    q = select(s.id, s.matchers, s.starts_at, s.ends_at, s.created_by, s.comment).order_by(s.ends_at.desc(), s.id)
    if not include_expired:
        q = q.where(s.ends_at > now)
    with _connect(bind) as conn:
        df = _frame(conn, q.limit(500))
    if df.empty:
        return pd.DataFrame(columns=["id", "matchers", "starts_at", "ends_at", "created_by", "comment", "active"])
    df["matchers"] = df["matchers"].map(
        lambda ms: ", ".join(f"{m.get('name')}{m.get('op', '=')}{m.get('value')}" for m in (ms or []))
    )
    for c in ("starts_at", "ends_at"):
        df[c] = pd.to_datetime(df[c].map(_utc), utc=True)
    ts = pd.Timestamp(now)
    df["active"] = (df["starts_at"] <= ts) & (df["ends_at"] > ts)
    return df


# --- documents ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DocFilter:
    """What the explorer (and the company drill-down) may filter documents by."""

    start: datetime
    end: datetime
    topics: tuple[str, ...] = ()
    sentiments: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    text: str = ""
    include_duplicates: bool = True
    limit: int = DOC_LIMIT


def search_documents(bind: Bind, f: DocFilter) -> pd.DataFrame:
    """Documents matching `f`, newest first, at most `f.limit`."""
    d = documents.c
    q = select(*[getattr(d, c) for c in DOC_COLUMNS])
    cond: list[Any] = [d.published_at >= f.start, d.published_at < f.end]
    if f.entities:
        de = document_entities.c
        ids = (
            select(de.document_id)
            .where(de.entity.in_(list(f.entities)), de.published_at >= f.start, de.published_at < f.end)
            .scalar_subquery()
        )
        cond.append(d.id.in_(ids))
    if f.topics:
        cond.append(d.topic.in_(list(f.topics)))
    if f.sentiments:
        cond.append(d.sentiment.in_(list(f.sentiments)))
    if f.sources:
        cond.append(d.source.in_(list(f.sources)))
    text = (f.text or "").strip()
    if text:
        cond.append(or_(d.text.icontains(text, autoescape=True), d.title.icontains(text, autoescape=True)))
    if not f.include_duplicates:
        cond.append(d.duplicate_of.is_(None))
    q = q.where(and_(*cond)).order_by(d.published_at.desc(), d.id).limit(max(1, min(int(f.limit), 100_000)))
    with _connect(bind) as conn:
        return _docs_frame(_frame(conn, q, DOC_COLUMNS))


def _docs_frame(df: pd.DataFrame) -> pd.DataFrame:
    if not df.empty:
        df["published_at"] = pd.to_datetime(df["published_at"].map(_utc), utc=True)
        df["entities"] = df["entities"].map(lambda e: ", ".join(e) if isinstance(e, list) else (e or ""))
    else:
        df["published_at"] = pd.Series([], dtype="datetime64[ns, UTC]")
    return df


def distinct_sources(bind: Bind, start: datetime, end: datetime, limit: int = 500) -> list[str]:
    d = documents.c
    q = (
        select(d.source)
        .where(d.published_at >= start, d.published_at < end, d.source.is_not(None))
        .group_by(d.source)
        .order_by(func.count().desc(), d.source)
        .limit(limit)
    )
    with _connect(bind) as conn:
        return [r[0] for r in conn.execute(q)]


# --- model ---------------------------------------------------------------------------------


def label_distribution(bind: Bind, start: datetime | None = None, end: datetime | None = None) -> dict[str, int]:
    """Sentiment counts from the `all` minute counts in [start, end) (everything if open)."""
    mc = minute_counts.c
    q = select(func.sum(mc.negative), func.sum(mc.neutral), func.sum(mc.positive)).where(
        mc.key_kind == "all", mc.key_value == "*"
    )
    if start is not None:
        q = q.where(mc.minute >= start)
    if end is not None:
        q = q.where(mc.minute < end)
    with _connect(bind) as conn:
        neg, neu, pos = conn.execute(q).one()
    return {"negative": int(neg or 0), "neutral": int(neu or 0), "positive": int(pos or 0)}


def topic_distribution(bind: Bind, start: datetime | None = None, end: datetime | None = None) -> dict[str, int]:
    mc = minute_counts.c
    q = select(mc.key_value, func.sum(mc.total)).where(mc.key_kind == "topic").group_by(mc.key_value)
    if start is not None:
        q = q.where(mc.minute >= start)
    if end is not None:
        q = q.where(mc.minute < end)
    with _connect(bind) as conn:
        return {k: int(v or 0) for k, v in conn.execute(q)}


def model_versions(bind: Bind, start: datetime, end: datetime) -> pd.DataFrame:
    """Which model versions labelled the documents in [start, end) (a bounded scan)."""
    d = documents.c
    q = (
        select(d.model_version.label("model_version"), func.count().label("documents"))
        .where(d.published_at >= start, d.published_at < end)
        .group_by(d.model_version)
        .order_by(func.count().desc())
    )
    with _connect(bind) as conn:
        return _frame(conn, q)
