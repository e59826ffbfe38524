"""Benchmark one detector tick over many keys with a week of minute counts (SQLite, or PostgreSQL).

    python -m pipelines.bench_detect [--keys 10000] [--days 7] [--docs-per-key-day 30]
                                     [--database-url postgresql+psycopg://...] [--json]

Builds a database with `keys` keys (20 topics, the rest companies with Zipf-like
volumes: a few busy names, a long sparse tail), a diurnal pattern and a 20% negative
share, then times:

* the *cold* tick: a fresh detector reads the whole baseline (hour blocks) and the
  recent minutes: what a daemon pays once after a start;
* *warm* ticks: the following minutes, as the live daemon runs them (new minutes, the
  hour that slides into the baseline, the evaluation over all keys);
* the pure evaluation alone (numpy/scipy over all keys).

The counts are built in SQLite; with `--database-url` they are also copied into that
PostgreSQL database (its `minute_counts`, `hour_counts`, `alerts` and `state` are emptied
first: give it a scratch database) and the ticks read from there, as a compose
deployment's detector does.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np

from monitor.store.keys import FEED
from pipelines.hardware import cpu_model


def hardware() -> dict[str, Any]:
    cpu = cpu_model()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def build(path: Path, keys: int, days: int, per_key_day: float, end: datetime, seed: int = 0) -> int:
    """Write minute_counts for `keys` keys over `days` days ending at `end`; returns the row count."""
    from monitor.store.migrate import upgrade
    from monitor.store.repository import rebuild_hour_counts
    from monitor.store.schema import make_engine

    url = f"sqlite:///{path}"
    upgrade(url)
    rng = np.random.default_rng(seed)
    minutes = days * 1440
    start = end - timedelta(minutes=minutes)
    m = np.arange(minutes)
    h = ((start.hour * 60 + start.minute + m) % 1440) / 60
    diurnal = np.where((h >= 9) & (h <= 23), 0.15 + 0.85 * np.clip(np.sin(np.pi * (h - 9) / 14), 0, None) ** 1.5, 0.15)
    diurnal /= diurnal.sum()
    n_topics = min(20, keys // 2)  # the rest are companies (a small run keeps some of each)
    weights = 1.0 / np.arange(1, keys - n_topics + 1) ** 0.9
    weights *= per_key_day * (keys - n_topics) / weights.sum()
    docs_per_key = rng.poisson(weights * days)
    total_docs = int(docs_per_key.sum())
    key_of_doc = np.repeat(np.arange(n_topics, keys), docs_per_key)
    minute_of_doc = rng.choice(minutes, size=total_docs, p=diurnal)
    neg = rng.random(total_docs) < 0.2
    topic_of_doc = rng.integers(0, n_topics, size=total_docs)
    kk = np.concatenate([key_of_doc, topic_of_doc, np.full(total_docs, keys)])  # entity, topic, "all"
    mm = np.concatenate([minute_of_doc] * 3)
    nn = np.concatenate([neg] * 3).astype(np.int64)
    code = kk.astype(np.int64) * minutes + mm
    uniq, inv = np.unique(code, return_inverse=True)
    tot = np.bincount(inv)
    negs = np.bincount(inv, weights=nn).astype(np.int64)
    ukey, umin = uniq // minutes, uniq % minutes
    stamps = (np.datetime64(start.replace(tzinfo=None), "m") + umin.astype("timedelta64[m]")).astype("datetime64[s]")
    stamp_s = np.char.add(np.char.replace(np.datetime_as_string(stamps, unit="s"), "T", " "), ".000000")
    names = (
        [("topic", f"Topic {i}") for i in range(n_topics)]
        + [("entity", f"E{i:05d}") for i in range(n_topics, keys)]
        + [FEED]
    )
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.executemany(
        "INSERT INTO minute_counts (key_kind, key_value, minute, total, negative, neutral, positive, novel_total, novel_negative) "
        "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
        (
            (names[k][0], names[k][1], s, t, n, t - n, t, n)
            for k, s, t, n in zip(ukey.tolist(), stamp_s.tolist(), tot.tolist(), negs.tolist(), strict=True)
        ),
    )
    con.commit()
    con.close()
    # The exact hourly sums the store keeps beside the minutes (what a cold tick reads).
    engine = make_engine(url)
    with engine.begin() as conn:
        rebuild_hour_counts(conn)
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return len(uniq)


def copy_to_postgres(sqlite_file: Path, url: str) -> None:
    """Copy the benchmark's minute counts into a (scratch) PostgreSQL database and rebuild its hour sums."""
    import psycopg
    from sqlalchemy.engine import make_url

    from monitor.store.migrate import upgrade
    from monitor.store.repository import rebuild_hour_counts
    from monitor.store.schema import make_engine

    upgrade(url)
    cols = "key_kind, key_value, minute, total, negative, neutral, positive, novel_total, novel_negative"
    src = sqlite3.connect(sqlite_file)
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as pg, pg.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")  # the SQLite minutes are UTC text without an offset
        cur.execute("TRUNCATE minute_counts, hour_counts, alerts, state")
        with cur.copy(f"COPY minute_counts ({cols}) FROM STDIN") as cp:
            for row in src.execute(f"SELECT {cols} FROM minute_counts"):
                cp.write_row(row)
    src.close()
    engine = make_engine(url)
    with engine.begin() as conn:
        rebuild_hour_counts(conn)
    engine.dispose()
    # A live database has been vacuumed and analysed long before a detector restarts; a
    # freshly loaded one has not (no visibility map, no statistics), which would make the
    # first read slower than any restart in production.
    with psycopg.connect(libpq, autocommit=True) as pg:
        pg.execute("VACUUM ANALYZE minute_counts")
        pg.execute("VACUUM ANALYZE hour_counts")


def run(
    keys: int = 10_000,
    days: int = 7,
    per_key_day: float = 30.0,
    warm_ticks: int = 20,
    db: str | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    from monitor.config import Settings
    from monitor.detect.detector import Detector
    from monitor.detect.runner import _detectors, tick
    from monitor.detect.source import SqlSource
    from monitor.detect.spike import evaluate
    from monitor.store.schema import make_engine

    end = datetime(2024, 5, 13, 15, 0, tzinfo=UTC)
    tmp = None
    if db is None:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "bench.db"
    else:
        path = Path(db)
        if path.exists():
            path.unlink()
    t0 = time.perf_counter()
    rows = build(path, keys, days, per_key_day, end + timedelta(minutes=warm_ticks + 1))
    url = f"sqlite:///{path}"
    if database_url:
        copy_to_postgres(path, database_url)
        url = database_url
    build_s = time.perf_counter() - t0
    settings = Settings(database_url=url)  # type: ignore[call-arg]
    engine = make_engine(url)
    _detectors.clear()
    t0, c0 = time.perf_counter(), time.process_time()
    signals = tick(engine, settings, end)
    cold = time.perf_counter() - t0
    cold_cpu = time.process_time() - c0
    warm, warm_cpu = [], []
    for i in range(1, warm_ticks + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        sigs = tick(engine, settings, end + timedelta(minutes=i))
        warm.append(time.perf_counter() - t0)
        warm_cpu.append(time.process_time() - c0)
    # The pure evaluation alone, on the last tick's evidence.
    det = Detector.from_settings(settings)
    with engine.connect() as conn, SqlSource(conn) as source:
        ev = det.evidence(
            source,
            int((end + timedelta(minutes=warm_ticks) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() // 60),
        )
    t0 = time.perf_counter()
    evaluate(ev, det.params)
    pure = time.perf_counter() - t0
    dialect = engine.dialect
    engine.dispose()
    if tmp is not None:
        tmp.cleanup()
    version = ".".join(str(v) for v in dialect.server_version_info or ())
    return {
        "database": f"{'PostgreSQL' if dialect.name == 'postgresql' else 'SQLite'} {version}".strip(),
        "keys": keys,
        "keys_evaluated_cold": len(signals),
        "keys_evaluated_warm_last": len(sigs),
        "days": days,
        "minute_count_rows": rows,
        "build_s": round(build_s, 2),
        "cold_tick_s": round(cold, 3),
        "cold_tick_cpu_s": round(cold_cpu, 3),
        "warm_tick_cpu_median_s": round(statistics.median(warm_cpu), 4),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "warm_tick_median_s": round(statistics.median(warm), 4),
        "warm_tick_max_s": round(max(warm), 4),
        "evaluate_only_s": round(pure, 4),
        "spiking": sum(s.spiking for s in signals),
        "target_cold_s": 2.0,
        "target_warm_s": 0.5,
        "hardware": hardware(),
    }


def sqlite_path(db: str | None) -> str | None:
    """`--db` as a SQLite file path: a path, or a `sqlite:///` URL."""
    if db and db.startswith("sqlite:///"):
        return db[len("sqlite:///") :]
    if db and "://" in db:
        raise click.BadParameter("the benchmark builds its own SQLite database: give a path or sqlite:///PATH")
    return db


@click.command("detect")
@click.option("--keys", type=click.IntRange(min=2), default=10_000, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True)
@click.option("--docs-per-key-day", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True)
@click.option("--warm-ticks", type=int, default=20, show_default=True)
@click.option("--db", default=None, help="Keep the benchmark database at this SQLite path (default: a temporary file).")
@click.option(
    "--database-url",
    default=None,
    help="Also copy the counts into this PostgreSQL database and tick there (it is emptied first: a scratch database).",
)
@click.option("--config", "_config", type=click.Path(dir_okay=False), hidden=True, expose_value=False)
@click.option("--json", "as_json", is_flag=True)
def command(
    keys: int,
    days: int,
    docs_per_key_day: float,
    warm_ticks: int,
    db: str | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """One detector tick over many keys with days of minute counts (cold and warm)."""
    if database_url and not database_url.startswith("postgresql"):
        raise click.BadParameter(
            "a PostgreSQL URL (postgresql+psycopg://...); SQLite is the default", param_hint="--database-url"
        )
    from psycopg import OperationalError as PgError
    from sqlalchemy.exc import OperationalError

    from monitor.app.options import unreachable_database

    try:
        res = run(keys, days, docs_per_key_day, warm_ticks, sqlite_path(db), database_url)
    except (OperationalError, PgError) as exc:
        if not database_url:
            raise
        hint = "--database-url names an existing scratch database, which this benchmark empties"
        raise unreachable_database(database_url, exc, hint) from None
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    hw = res["hardware"]
    click.echo(
        f"detector tick over {res['keys']:,} keys ({res['keys_evaluated_cold']:,} evaluated cold), {res['days']} days, "
        f"{res['minute_count_rows']:,} minute_counts rows, {res['database']}"
    )
    click.echo(
        f"  cold tick (fresh detector, whole baseline read): {res['cold_tick_s']:.3f} s "
        f"({res['cold_tick_cpu_s']:.3f} s CPU; target < 2 s)"
    )
    click.echo(
        f"  warm tick (live, per interval): median {res['warm_tick_median_s']:.3f} s "
        f"({res['warm_tick_cpu_median_s']:.3f} s CPU), max {res['warm_tick_max_s']:.3f} s (target < 0.5 s)"
    )
    click.echo(f"  load average while measuring: {res['load_average']}")
    click.echo(f"  evaluation alone: {res['evaluate_only_s']:.3f} s")
    click.echo(
        f"  hardware: {hw['cpu']}, {hw['cores']} cores, Python {hw['python']}, numpy {hw['numpy']}, {res['database']}"
    )


if __name__ == "__main__":  # `python -m pipelines.bench_detect`, the same as `finsent bench detect`
    command(prog_name="finsent bench detect")
