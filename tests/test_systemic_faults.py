"""A fault of our own is not bad input: a classifier that fails on every batch (CUDA out of
memory, an unreadable model file) stops consumption with the offsets uncommitted, turns
/healthz to 503 and is retried; nothing is dead-lettered, and the stream resumes with
nothing lost once it recovers. A record that alone breaks the classifier (the probe text
still classifies) is still isolated into the dead letters.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.app.broker import create_topics, free_port
from monitor.classify.base import KeywordTestDouble, Prediction
from monitor.config import Settings
from monitor.ingest.source import RawRecord
from monitor.store.schema import dead_letters, documents, make_engine
from tests.test_ingest import committed_to_end, make_messages, produce


class Flaky:
    """Raises on every call while `broken` is set, whatever the texts (a systemic fault)."""

    model_version = "flaky-1"

    def __init__(self) -> None:
        self.broken = threading.Event()
        self.broken.set()
        self.calls = 0

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        self.calls += 1
        if self.broken.is_set():
            raise RuntimeError("CUDA out of memory (simulated)")
        return KeywordTestDouble().classify(texts)


def _count(url: str, table) -> int:  # type: ignore[no-untyped-def]
    eng = make_engine(url)
    try:
        with eng.connect() as c:
            return int(c.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        eng.dispose()


def _healthz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.integration
def test_classifier_failing_on_every_batch_dead_letters_nothing_and_resumes(
    broker,
    topic_name: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from monitor.app.daemon import Daemon
    from monitor.store.migrate import upgrade

    create_topics(broker.bootstrap, [topic_name, f"{topic_name}.dlq"], partitions=3)
    produce(broker.bootstrap, topic_name, make_messages(200, 0))
    url = f"sqlite:///{tmp_path / 'sys.db'}"
    upgrade(url)
    port = free_port()
    settings = Settings(
        database_url=url,
        kafka_bootstrap=broker.bootstrap,
        kafka_topics=[topic_name],
        kafka_group=f"g-{topic_name}",
        metrics_port=port,
        batch_max_records=50,
    )
    clf = Flaky()
    daemon = Daemon(settings, clf)
    t = threading.Thread(target=daemon.run, daemon=True)
    t.start()
    try:
        end = time.monotonic() + 60
        status, body = 0, {}
        while time.monotonic() < end:
            time.sleep(0.5)
            if clf.calls >= 6:
                status, body = _healthz(port)
                if status == 503:
                    break
        print(f"\nclassifier broken: {clf.calls} calls, /healthz {status} {body}")
        assert status == 503, body
        assert _count(url, dead_letters) == 0, "a systemic fault dead-lettered records"
        assert _count(url, documents) == 0
        assert not committed_to_end(broker.bootstrap, topic_name, settings.kafka_group)

        clf.broken.clear()
        end = time.monotonic() + 90
        while time.monotonic() < end and _count(url, documents) < 200:
            time.sleep(0.5)
        assert _count(url, documents) == 200
        assert _count(url, dead_letters) == 0
        end = time.monotonic() + 30
        while time.monotonic() < end and not committed_to_end(broker.bootstrap, topic_name, settings.kafka_group):
            time.sleep(0.5)
        assert committed_to_end(broker.bootstrap, topic_name, settings.kafka_group)
        status, body = _healthz(port)
        assert status == 200, body
    finally:
        daemon.stop_event.set()
        t.join(20)


class Poison:
    """Fails on any batch holding the word POISON (a record fault): the probe passes."""

    model_version = "poison-1"

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        if any("POISON" in x for x in texts):
            raise ValueError("cannot tokenise this")
        return KeywordTestDouble().classify(texts)


def _records(texts: list[str]) -> list[RawRecord]:
    t = datetime(2024, 1, 2, tzinfo=UTC)
    return [RawRecord(json.dumps({"id": f"d{i}", "text": x}).encode(), "news", 0, i, t) for i, x in enumerate(texts)]


def test_record_fault_is_bisected_to_the_bad_record(tmp_path: Path) -> None:
    from monitor.app.wiring import build
    from monitor.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    parts = build(Settings(database_url=url, publish_results=False))
    texts = [f"Acme story {i}" for i in range(8)]
    texts[5] = "Acme POISON story"
    result = parts.processor(Poison()).process(_records(texts), datetime(2024, 1, 2, 1, tzinfo=UTC))
    assert result.inserted == 7 and [r.offset for r in result.rejections] == [5]


def test_systemic_fault_raises_instead_of_dead_lettering(tmp_path: Path) -> None:
    from monitor.app.batch import ClassifierUnavailable
    from monitor.app.wiring import build
    from monitor.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 's.db'}"
    upgrade(url)
    parts = build(Settings(database_url=url, publish_results=False))
    with pytest.raises(ClassifierUnavailable):
        parts.processor(Flaky()).process(_records(["a", "b", "c"]), datetime(2024, 1, 2, 1, tzinfo=UTC))
    assert _count(url, dead_letters) == 0
