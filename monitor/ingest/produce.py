"""`finsent produce`: a CSV or JSONL file to Kafka, one message per row.

Event time is kept twice: in the message's `published_at` and as the Kafka record
timestamp. Rows that are not valid JSON are sent unchanged, so the daemon dead-letters
them with a reason instead of the producer silently dropping them.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from monitor.config import Settings
from monitor.ingest.inputs import Columns, check_columns, read_records, to_message
from monitor.ingest.schemas import _Invalid, parse_time

log = logging.getLogger(__name__)


def _timestamp_ms(msg: dict[str, Any]) -> int | None:
    v = msg.get("published_at")
    if v in (None, ""):
        return None
    try:
        return int(parse_time(v).timestamp() * 1000)
    except _Invalid:
        return None


def iter_messages(path: str | Path, cols: Columns) -> Any:
    """(value bytes, key bytes or None, timestamp ms or None) per row."""
    p = Path(path)
    if p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with p.open("rb") as fh:
            for line in fh:
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except (UnicodeDecodeError, ValueError, RecursionError):
                    yield line, None, None
                    continue
                if not isinstance(obj, dict):
                    yield line, None, None
                    continue
                msg = to_message(obj, cols)
                yield json.dumps(msg, ensure_ascii=False).encode(), _key(msg), _timestamp_ms(msg)
        return
    check_columns(p, cols)
    for _n, row, _err in read_records(p):
        if row is None:
            continue
        msg = to_message(row, cols)
        yield json.dumps(msg, ensure_ascii=False).encode(), _key(msg), _timestamp_ms(msg)


def _key(msg: dict[str, Any]) -> bytes | None:
    v = msg.get("id")
    return str(v).encode() if v not in (None, "") else None


def produce_file(
    settings: Settings, path: str | Path, topic: str, cols: Columns, rate: float | None = None, progress: bool = True
) -> dict[str, Any]:
    from kafka import KafkaProducer
    from tqdm import tqdm

    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        acks="all",
        linger_ms=20,
        retries=10,
        max_request_size=max(1_048_576, settings.max_message_bytes * 6),
    )
    sent = 0
    t0 = time.monotonic()
    try:
        for value, key, ts in tqdm(
            iter_messages(path, cols), desc=f"produce {topic}", unit="msg", disable=not progress
        ):
            producer.send(topic, value=value, key=key, timestamp_ms=ts)
            sent += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    elapsed = time.monotonic() - t0
    return {
        "topic": topic,
        "sent": sent,
        "seconds": round(elapsed, 2),
        "msgs_per_s": round(sent / elapsed, 1) if elapsed else None,
    }
