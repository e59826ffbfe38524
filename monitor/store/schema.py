"""Database schema (SQLAlchemy Core tables) and engine construction.

The schema is owned by Alembic migrations in `monitor/migrations`; these table objects
are what the code queries with. SQLite is the embedded default, PostgreSQL the
production database; every statement used by the project works on both.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)

log = logging.getLogger(__name__)

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


documents = Table(
    "documents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("text", Text, nullable=False),
    Column("title", Text),
    Column("source", String(200)),
    Column("url", Text),
    Column("lang", String(16)),
    Column("kind", String(16)),
    Column("published_at", UTCDateTime, nullable=False),
    Column("ingested_at", UTCDateTime, nullable=False),
    Column("topic", String(64)),
    Column("topic_score", Float),
    Column("sentiment", String(16)),
    Column("sentiment_score", Float),
    Column("probs", JSON),
    Column("model_version", String(64)),
    Column("entities", JSON),  # list of symbols, also exploded into document_entities
    # {symbol: sentiment} toward each linked company (what its counts used); absent = the document's
    Column("entity_sentiment", JSON),
    Column("chunks", Integer),  # model windows the document was read in (title included)
    Column("cut", Text),  # why part of a long text was not read; NULL when read whole
    Column("meta", JSON),
    Column("kafka_topic", String(255)),
    Column("kafka_partition", Integer),
    Column("kafka_offset", BigInteger),
    # Near-duplicate of an earlier document (same story, retweet, syndicated copy):
    # stored and shown, but counted once by the detector.
    Column("duplicate_of", String(64)),
    Index("ix_documents_published_at", "published_at"),
    Index("ix_documents_topic_published", "topic", "published_at"),
)

document_entities = Table(
    "document_entities",
    metadata,
    Column("document_id", String(64), ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("published_at", UTCDateTime, nullable=False),
    # The sentiment toward this company (NULL on rows stored before it existed: the document's)
    Column("sentiment", String(16)),
    Column("sentiment_score", Float),
    PrimaryKeyConstraint("document_id", "entity"),
    Index("ix_document_entities_entity_time", "entity", "published_at"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", LargeBinary),
    Column("reason", Text, nullable=False),
    Column("raw", LargeBinary),
    # The Kafka record's timestamp: a re-drive (`finsent dlq replay`) decodes the record as
    # it was first decoded, so a message without `published_at` keeps its time and id.
    Column("record_time", UTCDateTime),
    Column("replayed_at", UTCDateTime),  # set once a re-drive stored it
    Column("replays", Integer, nullable=False, default=0, server_default="0"),
    UniqueConstraint("topic", "partition", "offset", name="uq_dead_letters_coords"),
)

# Per-minute counts per key. key_kind is "topic", "entity" or "all"; the detector reads
# only these, never raw documents, so it sees the whole stream whichever worker wrote it.
minute_counts = Table(
    "minute_counts",
    metadata,
    Column("key_kind", String(16), nullable=False),
    Column("key_value", String(128), nullable=False),
    Column("minute", UTCDateTime, nullable=False),
    Column("total", Integer, nullable=False, default=0),
    Column("negative", Integer, nullable=False, default=0),
    Column("neutral", Integer, nullable=False, default=0),
    Column("positive", Integer, nullable=False, default=0),
    # Counts of documents that are not near-duplicates of an earlier one.
    Column("novel_total", Integer, nullable=False, default=0),
    Column("novel_negative", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("key_kind", "key_value", "minute"),
    # Covering: a starting detector reads a day and more of minutes for every key by time
    # range, straight from this index (no lookup of each row in the table).
    Index(
        "ix_minute_counts_minute_cover",
        "minute",
        "key_kind",
        "key_value",
        "novel_total",
        "novel_negative",
        "total",
        "negative",
    ),
)

# The same counts summed per key and hour, kept exact in the transaction of every change
# to minute_counts (the store's upserts, retention's moves): a starting detector reads its
# week of baseline hours here, a few hundred thousand rows instead of millions of minutes
# aggregated on the fly. `hour` is the epoch hour (whole hours since 1970-01-01 UTC), the
# detector's own unit, so reading it needs no date arithmetic in SQL.
hour_counts = Table(
    "hour_counts",
    metadata,
    Column("key_kind", String(16), nullable=False),
    Column("key_value", String(128), nullable=False),
    Column("hour", BigInteger, nullable=False),
    Column("total", Integer, nullable=False, default=0),
    Column("negative", Integer, nullable=False, default=0),
    Column("neutral", Integer, nullable=False, default=0),
    Column("positive", Integer, nullable=False, default=0),
    Column("novel_total", Integer, nullable=False, default=0),
    Column("novel_negative", Integer, nullable=False, default=0),
    # Hour first and, on SQLite, stored in key order (no rowid): a time range is one
    # sequential read.
    PrimaryKeyConstraint("hour", "key_kind", "key_value"),
    sqlite_with_rowid=False,
)

# Hourly and daily roll-ups of minute_counts (grain "hour" or "day"), written by the
# retention job before it purges old minutes: baselines and the dashboard's long views
# read them where the minutes are gone.
count_rollups = Table(
    "count_rollups",
    metadata,
    Column("grain", String(8), nullable=False),
    Column("key_kind", String(16), nullable=False),
    Column("key_value", String(128), nullable=False),
    Column("bucket", UTCDateTime, nullable=False),
    Column("total", Integer, nullable=False, default=0),
    Column("negative", Integer, nullable=False, default=0),
    Column("neutral", Integer, nullable=False, default=0),
    Column("positive", Integer, nullable=False, default=0),
    Column("novel_total", Integer, nullable=False, default=0),
    Column("novel_negative", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("grain", "key_kind", "key_value", "bucket"),
    Index("ix_count_rollups_bucket", "grain", "bucket"),
)

# Cashtags that name no known company: counted here until they recur often enough to
# become entity keys (bounded keys: a one-off `$XYZ` never gets a detector key).
entity_sightings = Table(
    "entity_sightings",
    metadata,
    Column("symbol", String(64), primary_key=True),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("sightings", Integer, nullable=False, default=0),
)

# MinHash-LSH band buckets of recent documents, for cross-worker near-duplicate lookup.
near_dup_bands = Table(
    "near_dup_bands",
    metadata,
    Column("band", String(40), nullable=False),
    Column("document_id", String(64), nullable=False),
    Column("published_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("band", "document_id"),
    Index("ix_near_dup_bands_published", "published_at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(64), primary_key=True),  # deterministic from fingerprint + start
    Column("fingerprint", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("key_kind", String(16), nullable=False),
    Column("key_value", String(128), nullable=False),
    Column("severity", String(16), nullable=False, default="warning"),
    Column("state", String(16), nullable=False),  # pending | firing | resolved
    Column("started_at", UTCDateTime, nullable=False),
    Column("fired_at", UTCDateTime),
    Column("resolved_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("summary", Text),
    Column("numbers", JSON),  # counts, baseline, share, p-value, lift ... of the decision
    Column("acknowledged_by", String(128)),
    Column("acknowledged_at", UTCDateTime),
    Index("ix_alerts_fingerprint_state", "fingerprint", "state"),
    Index("ix_alerts_started", "started_at"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("matchers", JSON, nullable=False),  # [{"name": "key_value", "value": "AAPL", "op": "="}]
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
)

# The outbox: one row per (alert transition or group message, channel). Written in the
# same transaction as the alert change; the sender delivers and records attempts.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(200), nullable=False, unique=True),
    Column("alert_id", String(64)),
    Column("channel", String(128), nullable=False),
    Column("kind", String(16), nullable=False),  # firing | resolved | test | digest
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),  # pending|sent|failed|silenced
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Index("ix_notifications_status_next", "status", "next_attempt_at"),
)

# Alert transitions for the alerts topic, written in the alert transaction (a transactional
# outbox): the publisher produces the unpublished rows in order and stamps them, so a
# process killed between the commit and the produce leaves them for the next tick.
alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # pending | fired | resolved | dropped
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("published_at", UTCDateTime),
    Index("ix_alert_events_published", "published_at", "id"),
)

notification_attempts = Table(
    "notification_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notification_id", Integer, ForeignKey("notifications.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("ok", Boolean, nullable=False),
    Column("retryable", Boolean, nullable=False),
    Column("error", Text),
)

# Small key/value state: detector watermark, last digest, leases.
state = Table(
    "state",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("value", JSON),
    Column("updated_at", UTCDateTime, nullable=False),
)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine tuned for the backend: WAL + busy timeout on SQLite."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)
