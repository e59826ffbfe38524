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
from pathlib import Path
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


class UndecodableBatch(Exception):
    """A fetched record batch the consumer cannot decode: a compression codec whose library
    is missing, or a corrupt batch. Not bad input of one record (that is a dead letter), but
    a fault of this process: the position stays where it is, nothing is committed or
    skipped, and the batch is fetched again once the cause is fixed."""


_CODEC_HELP = (
    "install the codec libraries finsent depends on (pip install lz4 python-snappy zstandard), "
    "or reinstall finsent with its dependencies"
)


def _raised_in_record_decoding(exc: BaseException) -> bool:
    """True when the exception was raised by kafka-python's record-batch or codec code.

    The codec libraries raise their own types (lz4's RuntimeError, zstandard's ZstdError,
    snappy's UncompressError) from inside kafka-python's batch parser; the frames say where.
    """
    tb = exc.__traceback__
    while tb is not None:
        parts = Path(tb.tb_frame.f_code.co_filename).parts
        if "kafka" in parts:
            i = len(parts) - 1 - parts[::-1].index("kafka")
            rest = parts[i + 1 :]
            if rest and (rest[0] == "record" or rest[0] == "codec.py"):
                return True
        tb = tb.tb_next
    return False


def poll(consumer: Any, *, timeout_ms: int, max_records: int | None = None) -> Mapping[Any, Sequence[Any]]:
    """`consumer.poll`, with a batch that cannot be decoded raised as `UndecodableBatch`.

    kafka-python keeps the partition's position at the failed batch (the error is raised
    again on the next poll while the position is unchanged), so the caller only has to
    report the fault and try again later; it must not commit or seek past it.
    """
    from kafka.errors import CorruptRecordError, UnsupportedCodecError

    try:
        return consumer.poll(timeout_ms=timeout_ms, max_records=max_records)  # type: ignore[no-any-return]
    except UnsupportedCodecError as exc:
        _drop_failed_batch(consumer)
        raise UndecodableBatch(
            f"a record batch uses a compression codec this process cannot decode ({exc}); {_CODEC_HELP}"
        ) from exc
    except CorruptRecordError as exc:
        _drop_failed_batch(consumer)
        raise UndecodableBatch(f"a record batch is corrupt ({exc}); its offsets are kept") from exc
    except Exception as exc:
        if not _raised_in_record_decoding(exc):
            raise
        _drop_failed_batch(consumer)
        raise UndecodableBatch(
            f"a record batch could not be decompressed ({type(exc).__name__}: {str(exc)[:200]}); its offsets are kept"
        ) from exc


def _drop_failed_batch(consumer: Any) -> None:
    """Forget the fetched data whose decoding failed, so the next poll fetches it afresh.

    kafka-python 3.0.12 keeps the half-read partition data as "next in line" after its
    record iterator raised; the next `poll` then finds the iterator exhausted without
    draining it and spins in `Fetcher.fetched_records` forever (the stalled loop seen with
    a snappy producer). Dropping it makes the partition fetchable again from the unchanged
    position: the batch is fetched, fails the same way, and is reported again. Private
    state, so it is looked up defensively; the integration test (tests/test_codecs.py)
    fails if a kafka-python upgrade changes it.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is None:
        return
    drain = getattr(current, "drain", None)
    if callable(drain):
        drain()
    fetcher._next_partition_records = None  # type: ignore[union-attr]


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
