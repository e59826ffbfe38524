"""Every standard Kafka compression codec, produced by a client we did not write.

confluent-kafka (librdkafka, the client under most non-Java producers) produces to the
embedded broker with compression none, gzip, snappy, lz4 and zstd; a real `finsent run`
must store every message. A batch the daemon still cannot decode (here: its snappy
library is hidden from it) must be a logged fault with /healthz at 503 and no offsets
committed, not a crash; once the library is back, everything is stored.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.app.broker import EmbeddedBroker, create_topics, free_port
from monitor.store.schema import documents, make_engine
from tests.test_ingest import DaemonProc, _reap_daemons, counts, daemon_env, wait_for  # noqa: F401

pytestmark = pytest.mark.integration

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
PER_CODEC = 120


def produce_confluent(bootstrap: str, topic: str, codec: str, ids: list[str]) -> None:
    from confluent_kafka import Producer

    failures: list[object] = []
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "linger.ms": 50,  # several records per batch, so batches really are compressed
            "acks": "all",
        }
    )
    for n, doc_id in enumerate(ids):
        body = {"id": doc_id, "text": f"{codec} headline {n}: Acme shares move", "source": f"librdkafka-{codec}"}
        p.produce(
            topic,
            value=json.dumps(body).encode(),
            key=doc_id.encode(),
            on_delivery=lambda err, _msg: failures.append(err) if err is not None else None,
        )
    assert p.flush(60) == 0, f"{codec}: messages left unsent"
    assert not failures, f"{codec}: delivery failed: {failures[:3]}"


@contextmanager
def _codec_unavailable(codec: str) -> Iterator[None]:
    import kafka.codec

    name = f"has_{codec}"
    original = getattr(kafka.codec, name)
    setattr(kafka.codec, name, lambda: False)
    try:
        yield
    finally:
        setattr(kafka.codec, name, original)


def _batches_are_compressed(bootstrap: str, topic: str, codec: str) -> bool:
    """kafka-python without the codec fails on the topic: the broker holds compressed batches."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import UnsupportedCodecError

    tps = [TopicPartition(topic, p) for p in range(3)]
    with _codec_unavailable(codec):
        c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        c.assign(tps)
        c.seek_to_beginning(*tps)
        try:
            end = time.monotonic() + 15
            while time.monotonic() < end:
                c.poll(500)
        except UnsupportedCodecError:
            return True
        finally:
            c.close()
    return False


def _stored_ids(url: str) -> set[str]:
    eng = make_engine(url)
    try:
        with eng.connect() as c:
            return {r[0] for r in c.execute(select(documents.c.id))}
    finally:
        eng.dispose()


def test_every_codec_from_librdkafka_is_stored(broker: EmbeddedBroker, sqlite_url: str, tmp_path: Path) -> None:
    pytest.importorskip("confluent_kafka", reason="confluent-kafka (dev extra) is not installed")
    suffix = tmp_path.name[-8:].replace("_", "")
    topics = {codec: f"codec-{codec}-{suffix}" for codec in CODECS}
    create_topics(broker.bootstrap, [*topics.values(), *(f"{t}.dlq" for t in topics.values())], partitions=3)
    expected: set[str] = set()
    for codec, topic in topics.items():
        ids = [f"{codec}-{n}" for n in range(PER_CODEC)]
        produce_confluent(broker.bootstrap, topic, codec, ids)
        expected.update(ids)
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        assert _batches_are_compressed(broker.bootstrap, topics[codec], codec), f"{codec} batches were not compressed"

    d = DaemonProc(
        daemon_env(sqlite_url, broker.bootstrap, ",".join(topics.values()), f"g-{suffix}"), tmp_path / "daemon.log"
    )
    d.start()
    wait_for(lambda: counts(sqlite_url)[0] >= len(expected), 120, "every message stored", [d])
    assert d.terminate() == 0
    assert _stored_ids(sqlite_url) == expected
    assert counts(sqlite_url) == (len(expected), 0)
    log = d.log_path.read_text(errors="replace")
    assert "UnsupportedCodecError" not in log and "cannot decode" not in log


def _health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


def _committed(bootstrap: str, group: str) -> dict[object, object]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return dict(admin.list_group_offsets(group).get(group, {}))
    finally:
        admin.close()


def test_undecodable_batch_is_a_fault_not_a_crash(broker: EmbeddedBroker, sqlite_url: str, tmp_path: Path) -> None:
    pytest.importorskip("confluent_kafka", reason="confluent-kafka (dev extra) is not installed")
    topic = f"codec-fault-{tmp_path.name[-8:].replace('_', '')}"
    group = f"g-{topic}"
    create_topics(broker.bootstrap, [topic, f"{topic}.dlq"], partitions=3)
    ids = [f"snap-{n}" for n in range(80)]
    produce_confluent(broker.bootstrap, topic, "snappy", ids)

    # A daemon whose Python cannot import the snappy library: kafka-python has no snappy codec.
    blocker = tmp_path / "no-snappy"
    blocker.mkdir()
    (blocker / "snappy.py").write_text("raise ImportError('hidden by the test')\n")
    port = free_port()
    env = daemon_env(sqlite_url, broker.bootstrap, topic, group, FINSENT_METRICS_PORT=str(port))
    env["PYTHONPATH"] = f"{blocker}:{env.get('PYTHONPATH', '')}".rstrip(":")
    d = DaemonProc(env, tmp_path / "faulted.log")
    d.start()
    wait_for(lambda: _health(port)[0] == 503, 90, "/healthz to turn 503", [d])
    status, body = _health(port)
    assert "snappy" in str(body.get("fault")), body
    time.sleep(8)  # several more polls: still alive, still 503, nothing stored or committed
    assert d.alive(), d.log_path.read_text(errors="replace")[-3000:]
    assert _health(port)[0] == 503
    assert counts(sqlite_url)[0] <= 0
    assert _committed(broker.bootstrap, group) == {}
    log = d.log_path.read_text(errors="replace")
    assert log.count("consumption halted, nothing committed") == 1, log[-3000:]
    assert "pip install lz4 python-snappy zstandard" in log
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
        metrics_text = r.read().decode()
    undecodable = [
        float(line.split()[-1])
        for line in metrics_text.splitlines()
        if line.startswith("finsent_undecodable_batches_total ")
    ]
    assert undecodable and undecodable[0] >= 2
    assert d.terminate() == 0

    # The same group with the library back: nothing was skipped, so everything is stored.
    d2 = DaemonProc(daemon_env(sqlite_url, broker.bootstrap, topic, group), tmp_path / "fixed.log")
    d2.start()
    wait_for(lambda: counts(sqlite_url)[0] >= len(ids), 90, "the held-back batch to be stored", [d2])
    assert d2.terminate() == 0
    assert _stored_ids(sqlite_url) == set(ids)
