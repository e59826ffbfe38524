"""Detection end to end: synthetic feed -> classify -> novelty -> minute counts -> detector.

Most of it runs on the in-memory twin of minute_counts (fast, many ticks); the database
tests check that the SQL detector gives the very same signals, that only one daemon
ticks at a time, and that `replay` raises the planted alerts whatever the batch size.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.alerting.lifecycle import evaluate as alert_evaluate
from monitor.classify.base import KeywordTestDouble
from monitor.config import DetectSettings, Settings
from monitor.detect.detector import Detector
from monitor.detect.params import Params
from monitor.detect.runner import forget, tick
from monitor.detect.runner import tick as runner_tick
from monitor.detect.signals import Signal
from monitor.detect.windows import from_minute, to_minute
from monitor.enrich.novelty import bands
from monitor.ingest.schemas import parse_time
from pipelines.feed import TOPIC_SURGE_TEXTS, Decoy, Outage, Surge, generate
from pipelines.replay import drive
from tests.doubles import MinuteCounts

T0 = datetime(2024, 5, 6, tzinfo=UTC)  # a Monday
CLF = KeywordTestDouble()


def novel_flags(msgs: Sequence[dict[str, Any]], horizon_minutes: int = 360) -> list[bool]:
    """Near-duplicates in event-time order within the horizon, as the store marks them."""
    seen: dict[str, datetime] = {}
    out = []
    horizon = timedelta(minutes=horizon_minutes)
    for m in msgs:
        t = parse_time(m["published_at"])
        keys = bands(m["text"])
        dup = any(k in seen and t - seen[k] <= horizon for k in keys)
        out.append(not dup)
        for k in keys:
            seen[k] = t
    return out


def count(msgs: Sequence[dict[str, Any]], mc: MinuteCounts | None = None) -> MinuteCounts:
    mc = mc or MinuteCounts()
    preds = CLF.classify([m["text"] for m in msgs])
    for m, p, novel in zip(msgs, preds, novel_flags(msgs), strict=True):
        mc.add_document(to_minute(parse_time(m["published_at"])), p.topic, m["tickers"], p.sentiment, novel)
    return mc


def key_of(name: str) -> tuple[str, str]:
    return ("topic", name) if name in TOPIC_SURGE_TEXTS else ("entity", name)


# --- planted surges are found ---------------------------------------------------------------

SURGE_KEYS = ["AAPL", "TSLA", "JPM", "XOM", "KO", "CAT", "Financials", "DIS", "PFE"]
VOLUMES = [1.5, 3.0, 6.0]


def surge_plan(n: int, first: datetime, spacing_min: int = 40) -> list[Surge]:
    return [
        Surge(
            SURGE_KEYS[i % len(SURGE_KEYS)],
            first + timedelta(minutes=spacing_min * i),
            30,
            VOLUMES[(i // len(SURGE_KEYS)) % len(VOLUMES)],
        )
        for i in range(n)
    ]


def detection_delays(seed: int, n: int) -> list[int | None]:
    surges = surge_plan(n, T0 + timedelta(days=3, minutes=17))
    msgs = list(generate(seed, T0, 3 * 1440 + 40 * n + 60, 6.0, surges=surges))
    mc = count(msgs)
    det = Detector(Params())
    delays: list[int | None] = []
    for s in surges:
        start = to_minute(s.start)
        found = None
        for d in range(1, 16):
            sig = {x.key.kind + ":" + x.key.value: x for x in det.tick(mc, from_minute(start + d))}
            k = key_of(s.key)
            x = sig.get(f"{k[0]}:{k[1]}")
            if x is not None and x.spiking:
                found = d
                break
        delays.append(found)
    return delays


def test_planted_surges_detected_within_15_minutes() -> None:
    delays = detection_delays(seed=11, n=36)
    detected = sum(d is not None for d in delays)
    assert detected / len(delays) >= 0.95, delays


@pytest.mark.slow
def test_planted_surges_detected_many_seeds() -> None:
    delays = [d for seed in (21, 22, 23) for d in detection_delays(seed, 54)]
    assert sum(d is not None for d in delays) / len(delays) >= 0.95


# --- what must not alert --------------------------------------------------------------------


def test_quiet_feed_decoys_and_outage_do_not_alert() -> None:
    day2 = T0 + timedelta(days=2)
    decoys = [
        Decoy("AAPL", day2 + timedelta(hours=15), 30, 20),  # neutral repost storm
        Decoy("TSLA", day2 + timedelta(hours=17), 30, 20, sentiment="negative"),  # one bad headline, reposted
        Decoy("KO", day2 + timedelta(hours=3), 20, 8, sentiment="negative"),  # ... for a sparse name, at night
    ]
    outage = Outage(day2 + timedelta(hours=8), 180)
    msgs = list(generate(5, T0, 3 * 1440, 6.0, decoys=decoys, outages=[outage]))
    mc = count(msgs)
    det = Detector(Params())
    fired = []
    for m in range(to_minute(day2), to_minute(T0 + timedelta(days=3)), 2):
        fired += [
            (from_minute(m).isoformat(), s.key.value, s.numbers) for s in det.tick(mc, from_minute(m)) if s.spiking
        ]
    assert fired == []


def test_outage_recovery_right_after_gap_does_not_fire_and_history_counts_live_minutes() -> None:
    # A feed that was down for 9 days (longer than the baseline) comes back: every key warms up again.
    first = list(generate(6, T0, 1440, 6.0))
    back = T0 + timedelta(days=10)
    second = list(generate(7, back, 600, 6.0))
    mc = count(first + second)
    det = Detector(Params())
    for d in range(1, 180):
        for s in det.tick(mc, back + timedelta(minutes=d)):
            assert not s.spiking
            if d < 100:
                assert s.numbers["reason"] in ("warming_up", "no_volume") or not s.numbers["warm"]


# --- same stream, any batching -> same signals and alerts ---------------------------------


def run_stream(
    events: Iterable[tuple[datetime, dict[str, Any]]], batch_size: int, lateness_min: int, novel: dict[str, bool]
):
    p = Params(windows=(15, 60), warmup_minutes=60, baseline_days=1.0)
    mc = MinuteCounts()
    det = Detector(p)
    out: list[tuple] = []
    latest: dict = {}
    alerts: list[tuple] = []

    def process(batch: list[dict[str, Any]]) -> None:
        preds = CLF.classify([m["text"] for m in batch])
        for m, pr in zip(batch, preds, strict=True):
            mc.add_document(
                to_minute(parse_time(m["published_at"])), pr.topic, m["tickers"], pr.sentiment, novel[m["id"]]
            )

    def on_tick(t: datetime, sigs: list[Signal] | None) -> None:
        nonlocal latest
        # Ticks start after the first *arriving* event, which reordering may change;
        # from `lateness` after the stream's start on, every order must agree.
        if sigs is None or t < STREAM_START + timedelta(minutes=lateness_min + 1):
            return
        out.extend((s.at, s.key, s.spiking, s.calm, s.numbers["window_negative"], s.numbers["p_value"]) for s in sigs)
        changes, latest = alert_evaluate(latest, sigs)
        alerts.extend((c.kind, c.alert.key, c.alert.started_at) for c in changes if c.kind != "updated")

    drive(
        events,
        batch_size=batch_size,
        lateness=timedelta(minutes=lateness_min),
        interval_seconds=30,
        span_minutes=p.span_minutes,
        fresh_minutes=p.fresh_minutes,
        busy=det.watching,
        process=process,
        detect=lambda t: det.tick(mc, t),
        on_tick=on_tick,
    )
    return out, alerts


STREAM_START = T0 + timedelta(hours=12)
_STREAM = list(
    generate(
        9, STREAM_START, 330, 5.0, surges=[Surge("TSLA", T0 + timedelta(hours=16), 25, 3.0)], diurnal_pattern=False
    )
)
_NOVEL = {m["id"]: f for m, f in zip(_STREAM, novel_flags(_STREAM), strict=True)}
_REFERENCE: list = []


def _reference():
    if not _REFERENCE:
        ev = [(parse_time(m["published_at"]), m) for m in _STREAM]
        _REFERENCE.append(run_stream(ev, 10**9, 2, _NOVEL))
    return _REFERENCE[0]


def test_reference_stream_alerts_on_the_surge() -> None:
    _, alerts = _reference()
    assert [(k, key.value) for k, key, _ in alerts if k == "fired"] == [("fired", "TSLA")]


@given(batch=st.integers(1, 400), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_batching_and_reordering_within_lateness_do_not_change_signals(batch: int, seed: int) -> None:
    lateness = 2
    rng = random.Random(seed)
    # Arrival order: event time plus a random delay below the lateness bound.
    keyed = sorted(
        (
            (parse_time(m["published_at"]) + timedelta(seconds=rng.uniform(0, lateness * 60 - 1)), i, m)
            for i, m in enumerate(_STREAM)
        ),
        key=lambda x: (x[0], x[1]),
    )
    events = [(parse_time(m["published_at"]), m) for _, _, m in keyed]
    assert run_stream(events, batch, lateness, _NOVEL) == _reference()


# --- the SQL detector ----------------------------------------------------------------------


def load_counts(url: str, mc: MinuteCounts) -> Any:
    from monitor.store.repository import insert_counts
    from monitor.store.schema import make_engine

    engine = make_engine(url)
    rows = [
        {"key_kind": k, "key_value": v, "minute": from_minute(m), "total": t, "negative": neg, "neutral": 0,
         "positive": 0, "novel_total": nt, "novel_negative": nn}
        for (k, v, m), (t, nt, nn, neg) in mc.cells().items()
    ]  # fmt: skip
    with engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            insert_counts(conn, rows[i : i + 5000])
    return engine


def _settings(url: str) -> Settings:
    return Settings(database_url=url, detect=DetectSettings())  # type: ignore[call-arg]


def test_sql_detector_matches_in_memory(migrated: str) -> None:
    surge = Surge("JPM", T0 + timedelta(days=1, hours=15), 30, 3.0)
    msgs = list(generate(12, T0, 1440 + 18 * 60, 6.0, surges=[surge]))
    mc = count(msgs)
    engine = load_counts(migrated, mc)
    det = Detector(Params())
    s = _settings(migrated)
    for m in [15, 20, 25, 60, 120]:
        now = surge.start + timedelta(minutes=m, seconds=30)
        got = tick(engine, s, now, lock=False)
        want = det.tick(mc, now, open_keys=set())  # the runner's: no alert is open in this database
        assert [(x.key, x.spiking, x.calm, x.numbers) for x in got] == [
            (x.key, x.spiking, x.calm, x.numbers) for x in want
        ]
    assert any(x.spiking and x.key.value == "JPM" for x in tick(engine, s, surge.start + timedelta(minutes=15)))
    engine.dispose()


def test_only_one_daemon_ticks(migrated: str) -> None:
    mc = count(list(generate(13, T0, 600, 4.0)))
    engine = load_counts(migrated, mc)
    s = _settings(migrated)
    now = T0 + timedelta(minutes=590)
    wall = datetime(2030, 1, 1, tzinfo=UTC)

    def tick(*args: Any, **kwargs: Any) -> list[Signal]:
        # A fresh detector's first tick speaks for every key, so the holder's tick is never
        # empty (a warm detector reports only keys that can change an alert).
        forget(engine)
        return runner_tick(*args, **kwargs)

    assert tick(engine, s, now, owner="a", wall=wall)
    assert tick(engine, s, now, owner="b", wall=wall + timedelta(seconds=5)) == []
    assert tick(engine, s, now, owner="a", wall=wall + timedelta(seconds=30))  # renews
    # a dies; b takes over after the lease expires (aged in the row: on PostgreSQL the
    # lease is judged by the database's clock, not by `wall`)
    _age_lease(engine, timedelta(seconds=121))
    assert tick(engine, s, now, owner="b", wall=wall + timedelta(seconds=35))
    assert tick(engine, s, now, owner="a", wall=wall + timedelta(seconds=40)) == []
    engine.dispose()


def _age_lease(engine, by: timedelta) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select, update

    from monitor.store.schema import state

    with engine.begin() as c:
        at = c.execute(select(state.c.updated_at).where(state.c.name == "detector.lease")).scalar_one()
        c.execute(update(state).where(state.c.name == "detector.lease").values(updated_at=at - by))


# --- replay through the real batch pipeline and the alert outbox --------------------------


def test_replay_raises_planted_alert_at_any_batch_size(tmp_path) -> None:
    from pipelines.feed import write
    from pipelines.replay import replay

    surge = Surge("NVDA", T0 + timedelta(hours=15), 30, 3.0)
    decoy = Decoy("AAPL", T0 + timedelta(hours=17), 20, 20)
    path = tmp_path / "feed.csv"
    write(path, generate(14, T0 + timedelta(hours=10), 9 * 60, 6.0, surges=[surge], decoys=[decoy]))
    results = []
    for batch in (37, 500):
        url = f"sqlite:///{tmp_path}/r{batch}.db"
        s = Settings(database_url=url, model="test-double")  # type: ignore[call-arg]
        res = replay(path, s, classifier=CLF, batch_size=batch)
        results.append(res.fired)
    assert results[0] == results[1]
    fired = results[0]
    assert [(k, v) for k, v, _ in fired if k == "entity"] == [("entity", "NVDA")]
    started = datetime.fromisoformat([s for k, v, s in fired if v == "NVDA"][0])
    assert surge.start < started <= surge.start + timedelta(minutes=15)


def test_replay_holding_signals_per_batch_writes_the_alerts_of_a_tick_by_tick_run(tmp_path) -> None:
    """Without channels a replay applies the signals of a batch's ticks in one transaction;
    with a channel (here a webhook, notify off) it applies every tick as the daemon does.
    The alert rows are the same, to the last number, and so are the fired alerts."""
    from pydantic import SecretStr
    from sqlalchemy import create_engine, select

    from monitor.config import Channel
    from monitor.store.schema import alerts
    from pipelines.feed import write
    from pipelines.replay import replay

    surges = [Surge("NVDA", T0 + timedelta(hours=12), 30, 3.0), Surge("TSLA", T0 + timedelta(hours=16), 25, 3.0)]
    path = tmp_path / "feed.csv"
    write(path, generate(15, T0 + timedelta(hours=10), 10 * 60, 6.0, surges=surges))
    hook = Channel(name="h", type="webhook", url=SecretStr("http://127.0.0.1:9/never"))
    rows, fired = [], []
    for name, channels in (("held", ()), ("ticked", (hook,))):
        url = f"sqlite:///{tmp_path}/{name}.db"
        s = Settings(database_url=url, model="test-double", channels=channels)  # type: ignore[call-arg]
        res = replay(path, s, classifier=CLF, batch_size=200)
        fired.append(res.fired)
        engine = create_engine(url)
        with engine.connect() as c:
            rows.append([tuple(r) for r in c.execute(select(alerts).order_by(alerts.c.id))])
        engine.dispose()
    assert {v for k, v, _ in fired[0] if k == "entity"} >= {"NVDA", "TSLA"}
    assert fired[0] == fired[1]
    assert rows[0] == rows[1] and len(rows[0]) >= 2


def test_replay_cli_reads_other_column_names_and_time_formats(tmp_path) -> None:
    import csv
    import subprocess
    import sys

    path = tmp_path / "posts.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "source", "entity", "text", "item_id"])
        w.writerow(["1714953600", "social", "Apple Inc", "Apple shares plunge after probe", "a1"])
        w.writerow(["Mon May 06 00:05:00 +0000 2024", "social", "AAPL;MSFT", "Microsoft names new finance chief", "a2"])
        w.writerow(["2024-05-06 00:07:00", "social", "", "Markets quiet today", "a3"])
        w.writerow(["not a time", "social", "AAPL", "this row has no usable time", "a4"])
    db = f"sqlite:///{tmp_path}/cli.db"
    args = [
        sys.executable,
        "-m",
        "pipelines.replay",
        str(path),
        "--time-column",
        "timestamp",
        "--id-column",
        "item_id",
        "--db",
        db,
        "--model",
        "test-double",
        "--json",
    ]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import json

    out = json.loads(r.stdout)
    assert out["rows"] == 4 and out["rejected"] == 1 and out["first_event"].startswith("2024-05-06T00:00")
    bad = subprocess.run(
        [*args[:4], "--time-column", "nope", "--db", db, "--model", "test-double"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0 and "--time-column" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    h = subprocess.run([sys.executable, "-m", "pipelines.replay", "--help"], capture_output=True, text=True, timeout=60)
    assert "--entity-column" in h.stdout and "--notify" in h.stdout


def test_schedule_registers_an_interval_job(tmp_path) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from monitor.detect.clock import WatermarkClock
    from tests.doubles import schedule

    url = f"sqlite:///{tmp_path}/s.db"
    from monitor.store.migrate import upgrade
    from monitor.store.schema import make_engine

    upgrade(url)
    engine = make_engine(url)
    s = Settings(database_url=url, detect=DetectSettings(interval_seconds=0.2))  # type: ignore[call-arg]
    got: list[list[Signal]] = []
    clock = WatermarkClock(timedelta(0))
    sched = BackgroundScheduler(timezone="UTC")
    job = schedule(sched, engine, s, clock, lambda sigs, now: got.append(sigs))
    assert job.id == "detect" and job.trigger.interval == timedelta(seconds=0.2)
    sched.start()
    try:
        import time

        time.sleep(0.7)  # no event yet: the clock has no time, nothing is ticked
        assert got == []
    finally:
        sched.shutdown(wait=True)
        engine.dispose()


# --- a real-stream shape: a quiet company's bad hour -----------------------------------------


def test_quiet_company_with_eight_negative_stories_and_sixty_copies_fires() -> None:
    """Ten days without one negative item (two items a day), then 8 distinct negative
    stories and 60 near-copies of them within 90 minutes: the company must alert, and
    the alert must count stories and copies apart. The universe has 300 other
    companies, so the company's population prior is estimated, not configured."""
    rng = np.random.default_rng(4)
    mc = MinuteCounts()
    start = to_minute(T0)

    def doc(minute: int, company: str, negative: bool, novel: bool = True) -> None:
        mc.add_document(minute, "Company | Product News", [company], "negative" if negative else "neutral", novel)

    for day in range(10):
        for c in range(300):  # the rest of the universe: two items a day, ~8% negative
            for _ in range(2):
                doc(start + day * 1440 + int(rng.integers(0, 1440)), f"C{c:04d}", bool(rng.random() < 0.08))
        for _ in range(2):
            doc(start + day * 1440 + int(rng.integers(0, 1440)), "QUIET", False)
    burst = start + 10 * 1440 + 14 * 60
    for i in range(8):
        m = burst + i * 11
        doc(m, "QUIET", True)
        for j in range(8 if i < 4 else 7):
            doc(m + 1 + j, "QUIET", True, novel=False)
    det = Detector(Params())
    fired = None
    for m in range(burst - 30, burst + 120):
        for s in det.tick(mc, from_minute(m)):
            if s.key.value == "QUIET" and s.spiking and fired is None:
                fired = (m - burst, s.numbers)
    assert fired is not None
    delay, numbers = fired
    assert delay <= 90
    assert numbers["baseline_negative"] == 0
    assert 2 <= numbers["negative_stories"] <= 8 and numbers["negative_copies"] > 0  # stories and spread apart


def test_incremental_window_sums_equal_a_cold_detectors_after_jumps_and_gaps() -> None:
    """The warm detector's incremental window sums and baseline ring are exactly what a
    fresh detector reads at the same minute: after one-minute steps, hour-long jumps,
    read-ahead, and a gap in the stream longer than the whole span."""
    first = list(generate(8, T0, 3 * 1440, 5.0))
    later = list(generate(9, T0 + timedelta(days=20), 2 * 1440, 5.0))
    mc = count(first + later)
    p = Params()
    warm = Detector(p)
    warm.recheck_minutes = 0
    rng = random.Random(2)
    m = to_minute(T0) + 600
    checks = 0
    while m < to_minute(T0 + timedelta(days=22)):
        step = rng.choice([1, 1, 2, 5, 60, 400])
        m += step if m < to_minute(T0 + timedelta(days=3)) or m > to_minute(T0 + timedelta(days=19)) else 5000
        warm.evidence(mc, m, final_until=m + rng.choice([0, 30, 600]))
        if rng.random() < 0.05:
            cold = Detector(p)
            cold.recheck_minutes = 0
            cold.evidence(mc, m)
            for k, g in cold._index.items():
                w_g = warm._index[k]
                for w in p.widths:
                    assert warm._sums[w][w_g].tolist() == cold._sums[w][g].tolist(), (m, k, w)
                assert warm._ring_sum[:, w_g].tolist() == cold._ring_sum[:, g].tolist(), (m, k)
            checks += 1
    assert checks >= 5


def test_news_replay_alerts_on_the_company_the_news_is_bad_for(tmp_path) -> None:
    """Articles that name two companies, good news for one and bad for the other: the
    per-company counts use the sentiment toward each, so the company with the bad news
    alerts and the one with the good news beside it does not (a document-level label,
    neutral here, would have alerted for neither)."""
    import json

    from pipelines.replay import replay

    rng = random.Random(7)
    good = [
        "Tesla deliveries beat forecasts and its shares soar",
        "Tesla shares rally after record quarterly deliveries",
        "Tesla raises its delivery target; the stock gains",
        "Analysts upgrade Tesla after a beat on margins",
    ]
    bad = [
        "Ford shares plunge on a recall of {n} trucks",
        "Ford warns on costs as a probe into braking faults widens",
        "Ford faces a lawsuit from dealers after the recall of {n} pickups",
        "Ford stock falls after a downgrade over warranty losses",
        "Ford cuts its outlook as the recall of {n} vehicles drags on",
    ]
    start = T0 + timedelta(hours=15)
    rows = list(generate(21, T0 + timedelta(hours=1), 16 * 60, 5.0))
    for i in range(90):  # 3 articles a minute for 30 minutes
        sentences = [rng.choice(good), rng.choice(bad).format(n=rng.randint(1_000, 900_000))]
        rng.shuffle(sentences)
        rows.append(
            {
                "id": f"autos-{i}",
                "title": "Autos roundup",
                "text": ". ".join(sentences) + f". Desk note {rng.randint(1, 10**9)}.",
                "published_at": (start + timedelta(seconds=20 * i)).isoformat(),
                "source": rng.choice(["wire-a", "wire-b", "wire-c"]),
                "kind": "news",
            }
        )
    path = tmp_path / "news.jsonl"
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    url = f"sqlite:///{tmp_path}/news.db"
    res = replay(path, Settings(database_url=url, model="test-double"), classifier=CLF)  # type: ignore[call-arg]
    fired = {v for k, v, _ in res.fired if k == "entity"}
    assert "F" in fired
    assert "TSLA" not in fired


# --- bounded memory: idle keys evicted ------------------------------------------------------


def test_idle_keys_are_evicted_and_give_the_same_signals_when_they_return() -> None:
    """600 one-off cashtags on the first day leave the baseline span and are evicted; one of
    them returns days later with a negative burst. The evicting detector holds far fewer
    keys and gives exactly the signals of one that keeps every key (the returning key is as
    warm as if it had been kept)."""
    p = Params(windows=(15, 60), warmup_minutes=60, baseline_days=1.0)
    mc = count(list(generate(3, T0, 5 * 1440, 4.0)))
    day0 = to_minute(T0)
    for i in range(600):
        mc.add_document(day0 + 300 + i, None, [f"X{i:04d}"], "neutral")
    back = to_minute(T0 + timedelta(days=4, hours=14))
    for j in range(120):  # longer than the warm-up: a key back after the baseline span starts cold
        mc.add_document(back + j, None, ["X0007"], "negative" if j % 4 else "neutral")

    keep, evict = Detector(p), Detector(p)
    keep.evict_idle = False
    seen: list[list[tuple[str, bool, bool]]] = [[], []]
    for m in range(day0 + 1440, day0 + 5 * 1440, 5):
        now = from_minute(m)
        for out, det in zip(seen, (keep, evict), strict=True):
            out += [(s.key.value, s.spiking, s.calm) for s in det.tick(mc, now)]
    assert seen[0] == seen[1]
    assert ("X0007", True, False) in seen[1], "the returning key's burst should fire"
    assert evict.evicted >= 600 and len(evict._keys) <= len(keep._keys) - 590
    print(f"\nkeys held: {len(keep._keys)} kept vs {len(evict._keys)} with eviction ({evict.evicted} evicted)")


def _transitions(per_minute: Iterable[tuple[int, list[Signal]]]) -> list[tuple[int, str, str, str]]:
    """(minute, kind, value, change) of the alert lifecycle fed these signals, minute by minute."""
    latest: dict[str, Any] = {}
    out = []
    for m, sigs in per_minute:
        changes, latest = alert_evaluate(latest, sigs)
        out.extend((m, c.alert.key.kind, c.alert.key.value, c.kind) for c in changes if c.kind != "updated")
    return out


def test_judging_only_fresh_and_watched_keys_gives_the_alerts_of_judging_every_key() -> None:
    """A tick judges the fresh keys and the watched ones whose windows, baseline or the
    feed's windows moved; a detector made to judge every key at every minute fires and
    resolves exactly the same alerts at the same minutes."""
    surges = surge_plan(6, T0 + timedelta(days=2, hours=9))
    msgs = list(generate(4, T0, 2 * 1440 + 900, 6.0, surges=surges))
    mc = count(msgs)
    warm, full = Detector(Params()), Detector(Params())
    start = to_minute(T0 + timedelta(days=2, hours=8))
    got_warm, got_full = [], []
    for m in range(start, start + 600):
        got_warm.append((m, warm.tick(mc, from_minute(m))))
        full._full = True  # judge every key with volume, as a starting detector does
        got_full.append((m, full.tick(mc, from_minute(m))))
    fired = _transitions(got_full)
    assert sum(t[3] == "fired" for t in fired) >= 4 and any(t[3] == "resolved" for t in fired)
    assert _transitions(got_warm) == fired
