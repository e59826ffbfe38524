"""Dashboard query load times on a large SQLite database (not part of the test suite).

Seeds a synthetic database with N documents (default 1,000,000) spread over D days, with
their document_entities rows and the per-minute counts the pipeline would have written
(all / topic / entity), plus alerts and dead letters; then times the queries each page
issues with its default controls (the page code calls the same `dashboards.queries`
functions), cold (no Streamlit cache), median of R runs, and optionally each whole page
rendered through Streamlit's AppTest.

    python -m pipelines.bench_dashboard [--docs 1000000] [--days 30] [--db PATH] [--json]

The bulk load goes straight through sqlite3 (executemany in large transactions) into the
schema the migrations create, so the indexes are the production ones.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from models.labels import SENTIMENTS, TOPICS
from pipelines.hardware import cpu_model

COMPANIES = ("AAPL", "TSLA", "NVDA", "MSFT", "AMZN", "META", "GOOGL", "JPM", "BAC", "XOM", "BA", "DIS", "INTC", "PFE")
WEIGHTS = (10, 9, 8, 6, 6, 4, 4, 3, 2, 2, 2, 1.5, 1.5, 1)
SOURCES = ("Street Wire", "Market Pulse", "Daily Ledger", "Capital Desk", "chatboard", "stockforum", "fintalk")
WORDS = (
    "shares rise after guidance beat",
    "stock slides as outlook disappoints",
    "analysts raise price target",
    "regulator opens probe into accounting",
    "quarterly revenue tops estimates",
    "recall widens amid supply issues",
    "buyback announced by the board",
    "CEO steps down unexpectedly",
)
TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def hardware() -> dict[str, Any]:
    cpu = cpu_model()
    mem_gb = None
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gb": mem_gb,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def seed(path: Path, docs: int, days: int, seed_: int = 7) -> dict[str, Any]:
    """Write the synthetic database; returns what was written and how long it took."""
    from monitor.store.migrate import upgrade

    t0 = time.perf_counter()
    url = f"sqlite:///{path}"
    upgrade(url)
    rng = np.random.default_rng(seed_)
    end = datetime(2024, 6, 1, tzinfo=UTC)
    start = end - timedelta(days=days)
    span = int((end - start).total_seconds())
    # Event times: uniform over the span with a diurnal tilt; sorted (ids follow time).
    secs = np.sort(rng.integers(0, span, size=docs))
    topic_idx = rng.integers(0, len(TOPICS), size=docs)
    sent_idx = rng.choice(3, size=docs, p=[0.22, 0.48, 0.30])
    w = np.array(WEIGHTS, dtype=float)
    comp_idx = rng.choice(len(COMPANIES), size=docs, p=w / w.sum())
    src_idx = rng.integers(0, len(SOURCES), size=docs)
    word_idx = rng.integers(0, len(WORDS), size=docs)
    score = rng.uniform(0.4, 1.0, size=docs)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")
    ingested = end.strftime(TS_FORMAT)
    chunk = 50_000
    for lo in range(0, docs, chunk):
        hi = min(docs, lo + chunk)
        rows, ents = [], []
        for i in range(lo, hi):
            t = (start + timedelta(seconds=int(secs[i]))).replace(tzinfo=None).strftime(TS_FORMAT)
            sym = COMPANIES[comp_idx[i]]
            did = f"b{i:09d}"
            text = f"${sym} {WORDS[word_idx[i]]} #{i % 97}"
            rows.append(
                (
                    did,
                    text,
                    SOURCES[src_idx[i]],
                    f"https://news.example.com/a/{did}",
                    "news" if src_idx[i] < 4 else "comment",
                    t,
                    ingested,
                    TOPICS[topic_idx[i]],
                    0.9,
                    SENTIMENTS[sent_idx[i]],
                    float(score[i]),
                    "bench-1",
                    json.dumps([sym]),
                    "news",
                    int(i % 3),
                    int(i),
                )
            )
            ents.append((did, sym, t))
        with con:
            con.executemany(
                "INSERT INTO documents (id, text, source, url, kind, published_at, ingested_at, topic, topic_score,"
                " sentiment, sentiment_score, model_version, entities, kafka_topic, kafka_partition, kafka_offset)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            con.executemany("INSERT INTO document_entities (document_id, entity, published_at) VALUES (?,?,?)", ents)
    # Minute counts exactly as the store would have bumped them.
    minute = (secs // 60).astype(np.int64)
    frame = pd.DataFrame(
        {
            "minute": minute,
            "topic": np.array(TOPICS)[topic_idx],
            "entity": np.array(COMPANIES)[comp_idx],
            "neg": sent_idx == 0,
            "neu": sent_idx == 1,
            "pos": sent_idx == 2,
        }
    )
    count_rows = 0
    for kind, col in (("all", None), ("topic", "topic"), ("entity", "entity")):
        keys = ["minute"] if col is None else ["minute", col]
        g = frame.groupby(keys).agg(total=("neg", "size"), neg=("neg", "sum"), neu=("neu", "sum"), pos=("pos", "sum"))
        g = g.reset_index()
        values = g[col].astype(str).tolist() if col else ["*"] * len(g)
        mins = [(start + timedelta(minutes=int(m))).replace(tzinfo=None).strftime(TS_FORMAT) for m in g["minute"]]
        tot, neg, neu, pos = (g[c].astype(int).tolist() for c in ("total", "neg", "neu", "pos"))
        with con:
            con.executemany(
                "INSERT INTO minute_counts (key_kind, key_value, minute, total, negative, neutral, positive,"
                " novel_total, novel_negative) VALUES (?,?,?,?,?,?,?,?,?)",
                zip([kind] * len(g), values, mins, tot, neg, neu, pos, tot, neg, strict=True),
            )
        count_rows += len(g)
    # A few hundred alerts over the span, the last few firing; some dead letters.
    r = random.Random(seed_)
    alert_rows = []
    for i in range(300):
        st = start + timedelta(minutes=r.randrange(0, days * 1440 - 60))
        kind = "entity" if i % 2 else "topic"
        key = r.choice(COMPANIES) if kind == "entity" else r.choice(TOPICS)
        firing = i >= 295
        numbers = {"negative": 30, "total": 60, "share": 0.5, "baseline_share": 0.2, "lift": 2.5, "p_value": 1e-6}
        alert_rows.append(
            (
                f"a{i:05d}",
                f"fp{key}",
                "negative_surge",
                kind,
                key,
                "warning",
                "firing" if firing else "resolved",
                st.replace(tzinfo=None).strftime(TS_FORMAT),
                st.replace(tzinfo=None).strftime(TS_FORMAT),
                None if firing else (st + timedelta(minutes=45)).replace(tzinfo=None).strftime(TS_FORMAT),
                (st + timedelta(minutes=45)).replace(tzinfo=None).strftime(TS_FORMAT),
                f"negative surge on {key}",
                json.dumps(numbers),
            )
        )
    with con:
        con.executemany(
            "INSERT INTO alerts (id, fingerprint, rule, key_kind, key_value, severity, state, started_at, fired_at,"
            " resolved_at, updated_at, summary, numbers) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            alert_rows,
        )
        con.executemany(
            'INSERT INTO dead_letters (received_at, topic, partition, "offset", reason) VALUES (?,?,?,?,?)',
            [(ingested, "news", 0, i, "not JSON") for i in range(50)],
        )
    con.execute("ANALYZE")
    con.close()
    return {
        "documents": docs,
        "days": days,
        "minute_count_rows": count_rows,
        "alerts": len(alert_rows),
        "seed_s": round(time.perf_counter() - t0, 1),
        "db_mb": round(path.stat().st_size / 2**20, 1),
    }


def _time(fn: Callable[[], Any], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def page_queries(url: str, repeat: int = 3) -> dict[str, Any]:
    """Median seconds of each page's queries with the page's default controls."""
    from dashboards import queries as q
    from monitor.store.schema import make_engine

    eng = make_engine(url)
    lo, hi = q.data_bounds(eng)
    assert hi is not None and lo is not None
    end = hi + timedelta(minutes=1)
    out: dict[str, Any] = {}

    def overview(span: timedelta | None) -> Callable[[], Any]:
        def run() -> None:
            start = lo if span is None else end - span
            totals = q.key_totals(eng, "topic", start, end)
            keys = tuple(totals["key"].head(6))
            q.kpis(eng, start, end)
            step = q.effective_step(start, end, 3600)
            q.series(eng, "topic", start, end, step, keys)
            q.alert_list(eng, start, end, kinds=("topic",))
            q.top_movers(eng, end, timedelta(minutes=15), timedelta(days=7))

        return run

    def companies(span: timedelta) -> Callable[[], Any]:
        def run() -> None:
            start = end - span
            rank = q.company_ranking(eng, start, end, timedelta(days=30))
            sym = rank["key"].iloc[0]
            q.series(eng, "entity", start, end, q.effective_step(start, end, 3600), (sym,))
            q.alert_list(eng, start, end, kinds=("entity",))
            q.company_documents(eng, sym, start, end, (), 500)

        return run

    def alerts_page(span: timedelta | None) -> Callable[[], Any]:
        def run() -> None:
            start = lo if span is None else end - span
            al = q.alert_list(eng, start, end)
            al2 = q.alert_list(eng, start, end)  # the live fragment reads it again
            aid = (al if not al.empty else al2)["id"].iloc[0] if not al.empty else "a00299"
            row = q.alert_row(eng, aid)
            if row:
                q.alert_evidence(eng, row)
            q.silence_list(eng, datetime.now(UTC))

        return run

    def explorer(span: timedelta, text: str = "", limit: int = 1000) -> Callable[[], Any]:
        def run() -> None:
            start = end - span
            q.distinct_sources(eng, start, end)
            q.search_documents(eng, q.DocFilter(start=start, end=end, text=text, limit=limit))

        return run

    cases = {
        "overview_24h": overview(timedelta(hours=24)),
        "overview_7d": overview(timedelta(days=7)),
        "overview_all": overview(None),
        "companies_24h": companies(timedelta(hours=24)),
        "companies_7d": companies(timedelta(days=7)),
        "alerts_24h": alerts_page(timedelta(hours=24)),
        "alerts_all": alerts_page(None),
        "explorer_24h": explorer(timedelta(hours=24)),
        "explorer_24h_search": explorer(timedelta(hours=24), "guidance"),
        "explorer_7d_search": explorer(timedelta(days=7), "guidance"),
        "explorer_all_search_rare": explorer(end - lo, "ceo steps down unexpectedly #13"),
    }
    for name, fn in cases.items():
        out[name] = round(_time(fn, repeat), 4)
    eng.dispose()
    return out


def apptest_pages(url: str) -> dict[str, float]:
    """Whole pages through Streamlit's AppTest (script + queries + element building),
    first render (cold caches), default controls."""
    os.environ["FINSENT_DATABASE_URL"] = url
    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")
    at = AppTest.from_file(app, default_timeout=600)
    times: dict[str, float] = {}
    t = time.perf_counter()
    at.run()
    times["overview"] = round(time.perf_counter() - t, 3)
    for name in ("companies", "alerts", "explorer", "model"):
        t = time.perf_counter()
        at.switch_page(f"views/{name}.py").run()
        times[name] = round(time.perf_counter() - t, 3)
        if at.exception:
            times[name + "_exception"] = str(at.exception[0].value)[:200]  # type: ignore[assignment]
    return times


@click.command("dashboard")
@click.option("--docs", type=int, default=1_000_000, show_default=True)
@click.option("--days", type=int, default=30, show_default=True)
@click.option("--db", default=None, help="SQLite file (path or sqlite:///PATH) to (re)use; default a temporary one.")
@click.option("--reuse", is_flag=True, help="Use --db as it is (skip seeding).")
@click.option("--repeat", type=int, default=3, show_default=True)
@click.option("--no-apptest", is_flag=True, help="Skip the whole-page AppTest timings.")
@click.option("--config", "_config", type=click.Path(dir_okay=False), hidden=True, expose_value=False)
@click.option("--json", "as_json", is_flag=True)
def command(docs: int, days: int, db: str | None, reuse: bool, repeat: int, no_apptest: bool, as_json: bool) -> None:
    """The dashboard's queries and pages over a seeded database of many documents."""
    from pipelines.bench_detect import sqlite_path

    given = sqlite_path(db)
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="finsent-bench-")) / "bench.db"
    result: dict[str, Any] = {"hardware": hardware()}
    if not reuse:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        result["seed"] = seed(path, docs, days)
    url = f"sqlite:///{path}"
    result["query_s"] = page_queries(url, repeat)
    if not no_apptest:
        result["page_render_s"] = apptest_pages(url)
    result["db"] = str(path)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            click.echo(f"{k}: {json.dumps(v)}")


if __name__ == "__main__":  # `python -m pipelines.bench_dashboard`, the same as `finsent bench dashboard`
    command(prog_name="finsent bench dashboard")
