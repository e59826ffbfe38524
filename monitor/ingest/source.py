"""The Kafka edge of ingest: the consumer, a poll as raw records, and the dead-letter topic.

The daemon (`monitor.app.daemon`) owns the loop, the retries and the commit; this module
only knows how finsent talks to Kafka: one consumer group with manual commits, records
with their coordinates, and rejected records produced to `<topic>.dlq` with the reason
in headers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.config import Settings
from monitor.ingest.schemas import Rejection

REASON_HEADER_BYTES = 1000


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One consumed record, before decoding: value and key bytes with their coordinates."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None = None


def consumer_for(settings: Settings) -> Any:
    """A KafkaConsumer in the settings' group: no auto-commit (offsets are committed after
    the batch's transaction), batches of `batch_max_records`, large fetches."""
    from kafka import KafkaConsumer

    return KafkaConsumer(
        *settings.kafka_topics,
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        group_id=settings.kafka_group,
        client_id="finsent",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_max_records,
        max_poll_interval_ms=settings.max_poll_interval_ms,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=min(3000, settings.session_timeout_ms // 3),
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        reconnect_backoff_max_ms=5000,
    )


def records_from_poll(
    polled: Mapping[Any, Sequence[Any]], now: Callable[[], datetime]
) -> tuple[list[RawRecord], dict[Any, Any]]:
    """A poll's records in order, and the offsets to commit once they are stored (the next
    offset of each partition). A record without a usable timestamp gets `now()`."""
    from kafka.structs import OffsetAndMetadata

    records: list[RawRecord] = []
    offsets: dict[Any, Any] = {}
    for tp, recs in polled.items():
        for r in recs:
            ts = datetime.fromtimestamp(r.timestamp / 1000, UTC) if r.timestamp and r.timestamp > 0 else now()
            records.append(RawRecord(r.value, r.topic, r.partition, r.offset, ts, r.key))
        if recs:
            offsets[tp] = OffsetAndMetadata(recs[-1].offset + 1, "", -1)
    return records, offsets


class DeadLetterSink:
    """Produces rejected records to `<topic>.dlq`: the original value and key, the reason
    and the coordinates in headers. `send` returns once the broker has them all."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            acks="all",
            retries=5,
            max_request_size=max(1_048_576, settings.max_message_bytes * 6),
        )

    def send(self, rejected: Iterable[Rejection], records: Sequence[RawRecord]) -> list[Rejection]:
        by_coord = {(r.topic, r.partition, r.offset): r for r in records}
        sent = []
        for rej in rejected:
            original = by_coord.get((rej.topic, rej.partition, rej.offset))
            headers = [
                ("finsent-reason", rej.reason.encode("utf-8", "replace")[:REASON_HEADER_BYTES]),
                ("finsent-topic", rej.topic.encode()),
                ("finsent-partition", str(rej.partition).encode()),
                ("finsent-offset", str(rej.offset).encode()),
            ]
            value = original.value if original is not None and original.value is not None else rej.raw
            key = original.key if original is not None else None
            self.producer.send(f"{rej.topic}.dlq", value=value or b"", key=key, headers=headers)
            sent.append(rej)
        self.producer.flush(timeout=30)
        return sent

    def close(self) -> None:
        self.producer.close(timeout=2)
