"""Chaos with three workers (issue 18): three `finsent run` daemons in one consumer group on
PostgreSQL, the embedded broker with three partitions, near-copies of the same stories
produced to different partitions at the same moment, planted surges, two workers SIGKILLed
along the way, and a webhook receiver that answers its first requests slower than the
sender's claim lease.

It checks and prints: documents exact (stored + dead-lettered == produced, minute counts ==
a recount), every near-copy cluster with exactly one original, every notification
delivered (a duplicate only where an attempt timed out, which the receiver's idempotency
key absorbs) and never re-claimed while a request ran, and the channel's rate never
exceeded across the cluster (from the receiver's arrival times).
"""

from __future__ import annotations

import json
import random
import textwrap
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.app.broker import EmbeddedBroker
from monitor.store.repository import hour_count_mismatches, recount, stored_counts
from monitor.store.schema import documents, make_engine, notification_attempts, notifications
from tests._alerts_fixtures import Action, Receiver
from tests.test_ingest import (  # noqa: F401  (_reap_daemons is a fixture)
    DaemonProc,
    _reap_daemons,
    committed_to_end,
    counts,
    daemon_env,
    wait_for,
)
from tests.test_soak import _feed, _fired, _rows

RATE_PER_MINUTE = 12  # one request every 5 s to the channel, across the cluster
TIMEOUT_S = 3  # the channel's timeout: the claim lease is this + 30 s
SLOW_S = 40  # the receiver's first answers take longer than the claim lease


def _config(tmp_path: Path, base: str) -> Path:
    cfg = tmp_path / "chaos.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [alerting]
            group_wait_seconds = 0
            group_interval_seconds = 30
            repeat_interval_seconds = 3600
            sender_interval_seconds = 1
            [[channels]]
            name = "hook"
            type = "webhook"
            url = "{base}/webhook/chaos"
            secret = "chaos-secret"
            timeout_seconds = {TIMEOUT_S}
            rate_per_minute = {RATE_PER_MINUTE}
            """
        )
    )
    return cfg


_WORDS = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "contract",
    "army",
    "utility",
    "bank",
    "merger",
    "probe",
    "lawsuit",
    "dividend",
    "buyback",
    "guidance",
    "quarter",
    "revenue",
    "margin",
    "tariff",
    "export",
    "import",
    "factory",
    "plant",
    "strike",
    "union",
    "board",
    "chief",
    "officer",
    "resigns",
    "appoints",
    "upgrade",
    "downgrade",
    "rating",
    "outlook",
    "bond",
    "yield",
    "loan",
    "credit",
    "default",
    "rally",
    "slump",
    "record",
    "shares",
    "stock",
    "futures",
    "oil",
    "gas",
    "copper",
    "gold",
    "wheat",
    "coffee",
    "chip",
    "phone",
    "cloud",
    "drone",
    "satellite",
    "vaccine",
    "trial",
]


def _copies(n: int, now: datetime, seed: int) -> tuple[list[tuple[int, bytes, bytes, int]], dict[str, list[str]]]:
    """`n` stories, three near-copies each, one per partition, with the same timestamp."""
    rng = random.Random(seed)
    out, clusters = [], {}
    for i in range(n):
        at = now - timedelta(minutes=rng.randrange(30, 150), seconds=rng.randrange(60))
        # distinct stories (random words), so clusters do not near-copy each other
        story = f"Story {i}: " + " ".join(rng.choice(_WORDS) for _ in range(14))
        ids = []
        for p, suffix in enumerate(["", ".", " !"]):  # copies that differ by punctuation only
            doc_id = f"copy-{i}-{p}"
            body = {"id": doc_id, "text": story + suffix, "published_at": at.isoformat(), "source": f"s{p}"}
            out.append((p, json.dumps(body).encode(), doc_id.encode(), int(at.timestamp() * 1000)))
            ids.append(doc_id)
        clusters[f"story-{i}"] = ids
    return out, clusters


def _produce(
    bootstrap: str, msgs: list[tuple[bytes, bytes | None, int]], copies: list[tuple[int, bytes, bytes, int]]
) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for value, key, ts in msgs:
        p.send("news", value=value, key=key, timestamp_ms=ts)
    for part, value, key, ts in copies:  # each copy of a story to its own partition
        p.send("news", value=value, key=key, timestamp_ms=ts, partition=part)
    p.flush(60)
    p.close()


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_three_workers_chaos(pg_url: str, tmp_path: Path) -> None:
    url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    rng = random.Random(1818)
    now = datetime.now(UTC)
    msgs, planted, n_bad = _feed(4000, now, seed=rng.randrange(10**6))
    copies, clusters = _copies(40, now, seed=rng.randrange(10**6))
    produced = len(msgs) + len(copies)
    receiver = Receiver().start()
    receiver.push("/webhook", *[Action(200, {"ok": True}, delay=SLOW_S)] * 2)  # slower than the claim lease
    t0 = time.monotonic()
    kills = 0
    try:
        with EmbeddedBroker(topics=["news"], partitions=3) as b:
            env = daemon_env(
                url,
                b.bootstrap,
                "news",
                "g-chaos",
                FINSENT_CONFIG=str(_config(tmp_path, receiver.base)),
                FINSENT_BATCH_MAX_RECORDS="100",
                FINSENT_DETECT__INTERVAL_SECONDS="2",
                FINSENT_DETECT__WARMUP_MINUTES="60",
                FINSENT_DETECT__BASELINE_DAYS="1",
                FINSENT_RETENTION__MINUTE_COUNTS_DAYS="2",
            )
            ds = [DaemonProc(env, tmp_path / f"d{i}.log") for i in range(3)]
            for d in ds:
                d.start()
            half = len(msgs) // 2
            _produce(b.bootstrap, msgs[:half], copies)

            def total() -> int:
                docs, dead = counts(url)
                return docs + dead

            wait_for(lambda: total() > half // 3, 300, "progress before the first kill", ds)
            ds[0].kill()  # 1st SIGKILL, mid-ingest
            kills += 1
            _produce(b.bootstrap, msgs[half:], [])
            wait_for(lambda: total() > half + len(copies), 300, "progress before the second kill", ds)
            ds[1].kill()  # 2nd SIGKILL; both come back later
            kills += 1
            ds[0].start()
            wait_for(lambda: total() >= produced, 600, "every message stored or dead-lettered", ds)
            ds[1].start()
            wait_for(lambda: set(planted) <= set(_fired(url)), 300, f"alerts for {planted}", ds)

            def delivered() -> bool:
                rows = _rows(url, notifications)
                return bool(rows) and all(r["status"] in ("sent", "silenced") for r in rows)

            wait_for(delivered, 400, "every notification delivered", ds)
            wait_for(lambda: committed_to_end(b.bootstrap, "news", "g-chaos"), 120, "offsets committed", ds)
            for d in ds:
                assert d.terminate() == 0
    finally:
        receiver.stop()
    wall = time.monotonic() - t0

    eng = make_engine(url)
    with eng.connect() as c:
        dup_of = dict(c.execute(select(documents.c.id, documents.c.duplicate_of)).all())
        have, want = stored_counts(c), recount(c)
        hour_drift = hour_count_mismatches(c)
    eng.dispose()
    stored, dead = counts(url)
    lost = produced - stored - dead
    double_counted = sum(1 for k in set(have) | set(want) if have.get(k) != want.get(k))
    originals = {name: [i for i in ids if dup_of.get(i, "missing") is None] for name, ids in clusters.items()}
    bad_clusters = {k: v for k, v in originals.items() if len(v) != 1}

    rows = [r for r in _rows(url, notifications) if r["status"] != "silenced"]
    attempts = _rows(url, notification_attempts)
    by_id = {r["id"]: r["dedup_key"] for r in rows}
    timed_out = {
        by_id[a["notification_id"]]
        for a in attempts
        if a["notification_id"] in by_id and "timed out" in (a["error"] or "")
    }
    hits = receiver.on("/webhook")
    arrivals = sorted(r.at for r in hits)
    per_id = Counter(r.headers["x-finsent-notification-id"] for r in hits)
    extra = {k: n for k, n in per_id.items() if n > 1}
    in_any_minute = max((sum(1 for x in arrivals if a <= x < a + 60) for a in arrivals), default=0)
    gaps = [y - x for x, y in zip(arrivals, arrivals[1:], strict=False)]
    reclaimed = sum(d.log_path.read_text(errors="replace").count("re-claimed while this attempt ran") for d in ds)
    per_worker = defaultdict(int)
    for i, d in enumerate(ds):
        per_worker[i] = d.log_path.read_text(errors="replace").count("sent to hook")
    print(
        f"\nchaos: 3 workers, {kills} SIGKILLs; produced {produced} ({n_bad} malformed, {len(copies)} near-copies in "
        f"{len(clusters)} clusters), stored {stored}, dead-lettered {dead}, lost {lost}, double-counted cells "
        f"{double_counted}; clusters with != 1 original {len(bad_clusters)}; alerts {sorted(_fired(url))} vs planted "
        f"{sorted(planted)}; notifications {len(rows)}, requests {len(hits)} ({len(extra)} ids sent more than once, "
        f"all after a timed-out attempt: {set(extra) <= timed_out}), re-claimed while running {reclaimed}; "
        f"per-channel rate {RATE_PER_MINUTE}/min: max in any 60 s {in_any_minute}, smallest gap "
        f"{min(gaps) if gaps else float('nan'):.2f}s; sends per worker {dict(per_worker)}; {wall:.0f}s"
    )
    assert lost == 0 and double_counted == 0 and not hour_drift
    assert not bad_clusters, bad_clusters
    assert set(planted) <= set(_fired(url))
    assert {r["dedup_key"] for r in rows} == set(per_id), "every notification reached the receiver"
    assert set(extra) <= timed_out, (extra, timed_out)
    assert reclaimed == 0
    assert in_any_minute <= RATE_PER_MINUTE
    assert not gaps or min(gaps) >= 60 / RATE_PER_MINUTE - 0.25
