"""Scored results out: stored documents to `<topic>.scored`, alert changes to `finsent.alerts`.

Downstream systems (risk, trading, a data lake) read finsent's results as plain Kafka JSON,
keyed for idempotent consumers: a document by its id, an alert by its id.

Documents are published after the batch's database commit and before its offsets are
committed, every document of the batch, not only the newly inserted ones: a process killed
between the two replays the batch, and the replay publishes again what the first run may
not have. So the topic holds every stored document at least once, and copies share a key.
Alert transitions are written to `alert_events` in the alert transaction itself (a
transactional outbox) and produced from there, oldest first, then stamped as published: a
process killed between the commit and the produce leaves them for the next tick of any
daemon, so the alerts topic holds every transition at least once, keyed by alert id.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from monitor.classify.base import Prediction
from monitor.config import Settings
from monitor.store.repository import BatchResult, Classified
from monitor.store.schema import alert_events

log = logging.getLogger(__name__)

SCORED_SUFFIX = ".scored"
ATTEMPTS = 5


class OutputUnavailable(RuntimeError):
    """The results could not be produced after retries; the batch is not committed."""


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat() if t else None


def scored_record(item: Classified) -> dict[str, Any]:
    """One stored document as the scored topic carries it."""
    d, p = item.doc, item.pred
    return {
        "id": d.id,
        "source": d.source,
        "published_at": _iso(d.published_at),
        "topic": p.topic,
        "topic_score": p.topic_score,
        "sentiment": p.sentiment,
        "sentiment_score": p.sentiment_score,
        "probs": p.probs,
        # Companies linked to the document, each with the sentiment toward it (the
        # document's where no mention of it was read: a publisher ticker).
        "entities": [_company(s, p) for s in item.entities],
        "model_version": p.model_version,
        "title": d.title,
        "url": d.url,
        "lang": d.lang,
        "kind": d.kind,
        "kafka": {"topic": d.kafka_topic, "partition": d.kafka_partition, "offset": d.kafka_offset},
    }


def _company(symbol: str, p: Prediction) -> dict[str, Any]:
    e = p.entity(symbol)
    if e is None:
        return {
            "symbol": symbol,
            "name": symbol,
            "sentiment": p.sentiment,
            "sentiment_score": p.sentiment_score,
            "mentions": [],
        }
    return e.as_dict()


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


class ResultsPublisher:
    """Produces results with acks=all; connects on first use (a replay never does)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.alerts_topic = settings.alerts_topic
        self._producer: Any = None
        self._lock = threading.Lock()  # the batch thread and the scheduler's share it

    def _ensure(self) -> Any:
        with self._lock:
            return self._producer or self._connect()

    def _connect(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            from monitor.app.broker import create_topics

            wanted = [t + SCORED_SUFFIX for t in self.settings.kafka_topics] + [self.alerts_topic]
            try:
                create_topics(self.settings.kafka_bootstrap, wanted, partitions=3)
            except Exception as exc:  # e.g. no create permission: the topics may exist already
                log.warning("could not check or create the output topics %s: %s", wanted, exc)
            self._producer = KafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap.split(","),
                acks="all",
                retries=5,
                linger_ms=5,
                max_request_size=max(1_048_576, self.settings.max_message_bytes * 2),
            )
        return self._producer

    def _send_all(self, records: Sequence[tuple[str, str, bytes]]) -> None:
        """Send (topic, key, value) records and wait for every ack; retry what failed."""
        pending = list(records)
        for attempt in range(1, ATTEMPTS + 1):
            failed: list[tuple[tuple[str, str, bytes], Exception]] = []
            try:
                producer = self._ensure()
                futures = [(r, producer.send(r[0], key=r[1].encode(), value=r[2])) for r in pending]
                producer.flush(timeout=60)
            except Exception as exc:  # no broker yet, a closed producer: the whole lot again
                futures = []
                failed = [(r, exc) for r in pending]
            for rec, fut in futures:
                try:
                    fut.get(timeout=0)
                except Exception as exc:
                    failed.append((rec, exc))
            if not failed:
                return
            pending = [rec for rec, _exc in failed]
            log.warning(
                "producing %d result record(s) failed (%s); attempt %d of %d",
                len(pending),
                failed[0][1],
                attempt,
                ATTEMPTS,
            )
            time.sleep(min(30.0, 2.0**attempt))
        raise OutputUnavailable(f"could not produce {len(pending)} result record(s) after {ATTEMPTS} attempts")

    def publish_documents(self, items: Sequence[Classified], result: BatchResult) -> int:
        """Every document of a stored batch, except those the database refused."""
        refused = {(r.topic, r.partition, r.offset) for r in result.rejections}
        records = [
            (i.doc.kafka_topic + SCORED_SUFFIX, i.doc.id, _encode(scored_record(i)))
            for i in items
            if i.doc.kafka_topic and (i.doc.kafka_topic, i.doc.kafka_partition, i.doc.kafka_offset) not in refused
        ]
        if records:
            self._send_all(records)
        return len(records)

    def publish_alert_events(self, engine: Engine, now: datetime, batch: int = 500) -> int:
        """Produce the alert transitions not yet published (pending, fired, resolved,
        dropped), oldest first, keyed by alert id; stamp them once acknowledged.

        Rows are taken under `FOR UPDATE SKIP LOCKED` on PostgreSQL, so daemons ticking
        together do not produce the same rows; a crash after the produce and before the
        stamp produces them again (at least once). Raises OutputUnavailable when the broker
        does not take them; they stay for the next call."""
        ev = alert_events.c
        done = 0
        while True:
            with engine.begin() as conn:
                q = select(ev.id, ev.alert_id, ev.payload).where(ev.published_at.is_(None)).order_by(ev.id).limit(batch)
                if conn.dialect.name == "postgresql":
                    q = q.with_for_update(skip_locked=True)
                rows = conn.execute(q).all()
                if not rows:
                    return done
                self._send_all([(self.alerts_topic, r.alert_id, _encode(r.payload)) for r in rows])
                conn.execute(update(alert_events).where(ev.id.in_([r.id for r in rows])).values(published_at=now))
            done += len(rows)
            if len(rows) < batch:
                return done

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
