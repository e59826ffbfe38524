"""Scored results and alert changes out to Kafka, read back with a second client library.

A real `finsent run` on the embedded broker stores documents and publishes them to
`<topic>.scored`; confluent-kafka (librdkafka) reads them back: every stored document is
there, keyed by its id, copies under one key, also after a SIGKILL in mid-stream. Alert
transitions from the scheduled detect job reach `finsent.alerts` keyed by alert id.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor.app.broker import EmbeddedBroker, create_topics
from monitor.store.schema import documents, make_engine
from tests.test_ingest import DaemonProc, _reap_daemons, counts, daemon_env, wait_for  # noqa: F401

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 60) -> list[tuple[str, dict[str, Any]]]:
    """(key, value) of every record on `topic`, read from the beginning with confluent-kafka."""
    confluent_kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka (dev extra) is not installed")
    c = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    out: list[tuple[str, dict[str, Any]]] = []
    end = time.monotonic() + timeout
    idle_until = None
    try:
        while time.monotonic() < end:
            msg = c.poll(0.5)
            if msg is None:
                # Past the expected count, keep reading a little to catch surplus records.
                if len(out) >= expect:
                    idle_until = idle_until or time.monotonic() + 3
                    if time.monotonic() > idle_until:
                        break
                continue
            if msg.error():
                continue
            out.append((msg.key().decode(), json.loads(msg.value())))
    finally:
        c.close()
    return out


def _produce(bootstrap: str, topic: str, n: int, dup_every: int = 0, bad: int = 0) -> list[str]:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    ids = []
    for i in range(n):
        doc_id = f"d{i}"
        body = {
            "id": doc_id,
            "text": f"Acme shares plunge after probe, story {i} $ACME",
            "published_at": (T0 + timedelta(seconds=i)).isoformat(),
            "source": "wire",
        }
        p.send(topic, json.dumps(body).encode(), key=doc_id.encode())
        ids.append(doc_id)
        if dup_every and i % dup_every == 0:  # a copy of the same story (same id)
            p.send(topic, json.dumps(body).encode(), key=doc_id.encode())
    for j in range(bad):
        p.send(topic, b"{not json " + str(j).encode())
    p.flush(60)
    p.close()
    return ids


def _stored_ids(url: str) -> set[str]:
    eng = make_engine(url)
    try:
        with eng.connect() as c:
            return {r[0] for r in c.execute(select(documents.c.id))}
    finally:
        eng.dispose()


@pytest.fixture
def topic(broker: EmbeddedBroker, topic_name: str) -> str:
    create_topics(broker.bootstrap, [topic_name, f"{topic_name}.dlq"], partitions=3)
    return topic_name


def test_every_stored_document_is_published_keyed_by_id(
    broker: EmbeddedBroker, topic: str, sqlite_url: str, tmp_path: Path
) -> None:
    ids = _produce(broker.bootstrap, topic, 60, dup_every=10, bad=3)
    d = DaemonProc(daemon_env(sqlite_url, broker.bootstrap, topic, f"g-{topic}"), tmp_path / "d.log")
    d.start()
    wait_for(lambda: counts(sqlite_url) == (60, 3), 90, "documents stored", [d])
    assert d.terminate() == 0
    stored = _stored_ids(sqlite_url)
    assert stored == set(ids)

    got = read_topic(broker.bootstrap, f"{topic}.scored", expect=66)
    keys = [k for k, _v in got]
    assert set(keys) == stored  # every stored document, nothing else (not the bad records)
    assert all(k == v["id"] for k, v in got)
    # The six copies were published under their story's key: more records than documents.
    assert len(got) == 66 and keys.count("d0") == 2 and keys.count("d1") == 1
    value = dict(got)["d5"]
    assert set(value) >= {"id", "source", "published_at", "topic", "sentiment", "probs", "entities", "model_version"}
    assert value["source"] == "wire" and value["published_at"] == (T0 + timedelta(seconds=5)).isoformat()
    assert value["sentiment"] in ("negative", "neutral", "positive")
    assert set(value["probs"]) == {"topic", "sentiment"}
    assert value["entities"] and value["entities"][0]["symbol"] == "ACME"
    assert value["model_version"]
    assert value["kafka"]["topic"] == topic


def test_sigkill_in_mid_stream_leaves_no_stored_document_unpublished(
    broker: EmbeddedBroker, topic: str, sqlite_url: str, tmp_path: Path
) -> None:
    ids = _produce(broker.bootstrap, topic, 3000)
    env = daemon_env(sqlite_url, broker.bootstrap, topic, f"g-{topic}", FINSENT_BATCH_MAX_RECORDS="100")
    d = DaemonProc(env, tmp_path / "d.log")
    d.start()
    wait_for(lambda: counts(sqlite_url)[0] >= 300, 90, "a part of the stream stored", [d])
    d.kill()
    killed_at = counts(sqlite_url)[0]
    assert killed_at < 3000, "the kill came too late to be mid-stream"
    d2 = DaemonProc(env, tmp_path / "d2.log")
    d2.start()
    wait_for(lambda: counts(sqlite_url)[0] == 3000, 120, "the rest stored", [d2])
    assert d2.terminate() == 0
    assert _stored_ids(sqlite_url) == set(ids)
    got = read_topic(broker.bootstrap, f"{topic}.scored", expect=3000, timeout=90)
    published = {k for k, _v in got}
    assert published == set(ids), f"missing from the topic: {sorted(set(ids) - published)[:10]}"


NUMBERS = {"window_negative": 14, "window_total": 20, "share": 0.7, "baseline_share": 0.2}


def _alert_settings(broker: EmbeddedBroker, tmp_path: Path, **kw: Any) -> Any:
    """Settings over a fresh migrated SQLite file, publishing alerts to a topic of their own."""
    from monitor.config import Settings
    from monitor.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    upgrade(url)
    return Settings(
        database_url=url,
        kafka_bootstrap=broker.bootstrap,
        kafka_topics=(f"in-{uuid.uuid4().hex[:6]}",),
        alerts_topic=f"alerts-{uuid.uuid4().hex[:8]}",
        **kw,
    )


def test_alert_changes_are_published_keyed_by_alert_id(broker: EmbeddedBroker, tmp_path: Path) -> None:
    from monitor.app.scheduler import detect_and_alert
    from monitor.app.wiring import build
    from monitor.config import DetectSettings
    from monitor.detect.signals import Key, Signal

    settings = _alert_settings(broker, tmp_path, detect=DetectSettings(resolve_minutes=0))  # type: ignore[call-arg]
    alerts_topic = settings.alerts_topic
    key = Key("entity", "TSLA")
    numbers = NUMBERS

    class Script:
        """The detector's part played by a script of signals (the alert stages are real)."""

        def __init__(self) -> None:
            self.next: list[Signal] = []

        def tick(self, now: datetime) -> list[Signal]:
            return self.next

    script = Script()
    parts = replace(build(settings), detector=script)  # type: ignore[arg-type]
    script.next = [Signal(key, T0, T0 - timedelta(minutes=15), True, False, numbers, severity="critical")]
    detect_and_alert(parts, T0)
    later = T0 + timedelta(minutes=5)
    script.next = [Signal(key, later, later - timedelta(minutes=15), False, True, {"window_negative": 1})]
    detect_and_alert(parts, later)
    assert parts.results is not None
    parts.results.close()
    parts.engine.dispose()

    got = read_topic(broker.bootstrap, alerts_topic, expect=2)
    assert len({k for k, _v in got}) == 1, got  # one alert, one key
    alert_id, _ = got[0]
    assert all(v["id"] == alert_id for _k, v in got)
    changes = [v["change"] for _k, v in got]
    assert changes[-2:] == ["fired", "resolved"], changes
    fired = next(v for _k, v in got if v["change"] == "fired")
    assert fired["key"] == {"kind": "entity", "value": "TSLA"} and fired["state"] == "firing"
    assert fired["severity"] == "critical" and fired["fired_at"] == T0.isoformat()
    resolved = got[-1][1]
    assert resolved["state"] == "resolved" and resolved["resolved_at"] == later.isoformat()


def test_alert_change_committed_but_not_produced_is_produced_by_the_next_tick(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A process killed between the alert transaction's commit and the produce: the
    transition was written to `alert_events` with the alert, and the next tick (of any
    daemon) produces it; nothing is produced twice once stamped."""
    from sqlalchemy import func

    from monitor.app.scheduler import detect_and_alert
    from monitor.app.wiring import build
    from monitor.detect.signals import Key, Signal
    from monitor.store.schema import alert_events

    settings = _alert_settings(broker, tmp_path)
    alerts_topic = settings.alerts_topic
    key = Key("entity", "NVDA")
    numbers = NUMBERS

    class Quiet:
        def tick(self, now: datetime) -> list[Signal]:
            return []

    parts = replace(build(settings), detector=Quiet())  # type: ignore[arg-type]
    # The alert transaction commits; the process "dies" before producing (no publish call).
    fired = parts.alerting.apply([Signal(key, T0, T0 - timedelta(minutes=15), True, False, numbers)], T0)
    assert [c.kind for c in fired.changes if c.kind != "updated"] == ["fired"]
    with parts.engine.connect() as c:
        assert c.execute(select(func.count()).where(alert_events.c.published_at.is_(None))).scalar_one() == 1
    # The next tick, with nothing new, produces what was left behind, then stamps it.
    detect_and_alert(parts, T0 + timedelta(minutes=1))
    detect_and_alert(parts, T0 + timedelta(minutes=2))
    with parts.engine.connect() as c:
        assert c.execute(select(func.count()).where(alert_events.c.published_at.is_(None))).scalar_one() == 0
    assert parts.results is not None
    parts.results.close()
    parts.engine.dispose()
    got = read_topic(broker.bootstrap, alerts_topic, expect=1)
    assert [(k, v["change"]) for k, v in got] == [(fired.changes[0].alert.id, "fired")], got


class _FlakyProducer:
    """A stand-in for KafkaProducer whose sends fail `failures` times (a unit-test fake)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> Any:
        outer = self

        class Future:
            def get(self, timeout: float = 0) -> None:
                if outer.failures > 0:
                    outer.failures -= 1
                    raise RuntimeError("broker said no")
                outer.sent.append((topic, key))

        return Future()

    def flush(self, timeout: float) -> None:
        pass


def _items() -> tuple[list[Any], Any]:
    from monitor.classify.base import Prediction
    from monitor.ingest.schemas import Document, Rejection
    from monitor.store.repository import BatchResult, Classified

    pred = Prediction("Earnings", 0.9, "negative", 0.8, {"topic": {}, "sentiment": {}}, "v1")
    items = [
        Classified(Document(f"d{i}", "t", T0, kafka_topic="news", kafka_partition=0, kafka_offset=i), pred, ("ACME",))
        for i in range(3)
    ]
    refused = Rejection("database refused the record", b"", "news", 0, 2)
    return items, BatchResult(inserted=2, rejections=[refused])


def test_publisher_retries_failed_records_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.app import outputs
    from monitor.config import Settings

    monkeypatch.setattr(outputs.time, "sleep", lambda _s: None)
    items, result = _items()
    pub = outputs.ResultsPublisher(Settings())
    pub._producer = _FlakyProducer(failures=1)
    assert pub.publish_documents(items, result) == 2  # the refused record is not published
    assert sorted(pub._producer.sent) == [("news.scored", b"d0"), ("news.scored", b"d1")]

    pub._producer = _FlakyProducer(failures=10**6)
    with pytest.raises(outputs.OutputUnavailable):
        pub.publish_documents(items, result)


def test_scored_record_shape() -> None:
    from monitor.app.outputs import scored_record

    items, _ = _items()
    rec = scored_record(items[0])
    assert rec["id"] == "d0" and rec["published_at"] == T0.isoformat()
    # No mention read: the document's sentiment stands in.
    assert rec["entities"] == [
        {"symbol": "ACME", "name": "ACME", "sentiment": "negative", "sentiment_score": 0.8, "mentions": []}
    ]
    assert (rec["topic"], rec["sentiment"], rec["model_version"]) == ("Earnings", "negative", "v1")


def test_scored_record_carries_the_sentiment_toward_each_company() -> None:
    from dataclasses import replace

    from monitor.app.outputs import scored_record
    from monitor.classify.base import EntitySentiment

    items, _ = _items()
    toward = (
        EntitySentiment("ACME", "positive", 0.7, name="Acme", mentions=((0, 4),)),
        EntitySentiment("GM", "negative", 0.9, name="General Motors", mentions=((10, 12),)),
    )
    it = replace(items[0], pred=replace(items[0].pred, entities=toward), entities=("ACME", "GM"))
    rec = scored_record(it)
    assert [(e["symbol"], e["name"], e["sentiment"], e["mentions"]) for e in rec["entities"]] == [
        ("ACME", "Acme", "positive", [[0, 4]]),
        ("GM", "General Motors", "negative", [[10, 12]]),
    ]
