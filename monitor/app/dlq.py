"""`finsent dlq replay`: re-drive dead letters through the batch pipeline once their cause
is fixed (a classifier bug, a mapping, a too-small size limit).

Each dead letter is decoded as the daemon first decoded it (its value, its Kafka
coordinates and record time), then classified and stored by the same `BatchProcessor`.
It is idempotent: documents are stored by id (a message without an id keeps the id it
would have had), counts are bumped only for rows really inserted, and a stored dead
letter is marked `replayed_at` so the next replay skips it. A record that fails again
keeps its row with the new reason. The `<topic>.dlq` Kafka topic is a log and is left
alone.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime

from monitor.app.batch import BatchProcessor
from monitor.ingest.source import RawRecord
from monitor.store.dead_letters import Filter, record_outcomes, select_for_replay

log = logging.getLogger(__name__)

CHUNK = 256


@dataclass
class ReplayStats:
    selected: int = 0
    stored: int = 0  # newly stored documents
    already_stored: int = 0  # the document was there (an earlier re-drive, or a copy)
    still_rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def replay(processor: BatchProcessor, f: Filter, now: datetime) -> ReplayStats:
    engine = processor.store.engine
    stats = ReplayStats()
    after = 0
    while True:
        with engine.connect() as conn:
            rows = select_for_replay(conn, f, after, CHUNK)
        if not rows:
            return stats
        after = rows[-1].id
        stats.selected += len(rows)
        records = [
            RawRecord(r.raw, r.topic, r.partition, r.offset, r.record_time or r.received_at, r.key) for r in rows
        ]
        ids = {(r.topic, r.partition, r.offset): r.id for r in rows}
        docs, rejected = processor.decode(records)
        pairs, poison = processor.classify(docs)
        # Rejections are not written again (their rows exist); their new reasons are recorded below.
        result = processor.process_classified(processor.enrich(pairs), [], now)
        stats.stored += result.inserted
        stats.already_stored += result.duplicates
        again = {ids[(x.topic, x.partition, x.offset)]: x.reason for x in [*rejected, *poison, *result.rejections]}
        stats.still_rejected += len(again)
        stored = [i for i in ids.values() if i not in again]
        with engine.begin() as conn:
            record_outcomes(conn, stored, again, now)
        log.info("re-drove %d dead letters: %s", len(rows), stats.as_dict())
