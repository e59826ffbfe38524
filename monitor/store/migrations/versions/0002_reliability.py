"""reliability: dead-letter re-drive columns, count roll-ups, entity sightings

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:00:00
"""

import sqlalchemy as sa
from alembic import op

import monitor.store.schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COUNTS = ("total", "negative", "neutral", "positive", "novel_total", "novel_negative")


def upgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("record_time", monitor.store.schema.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("replayed_at", monitor.store.schema.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("replays", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "count_rollups",
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("key_kind", sa.String(length=16), nullable=False),
        sa.Column("key_value", sa.String(length=128), nullable=False),
        sa.Column("bucket", monitor.store.schema.UTCDateTime(timezone=True), nullable=False),
        *[sa.Column(c, sa.Integer(), nullable=False) for c in _COUNTS],
        sa.PrimaryKeyConstraint("grain", "key_kind", "key_value", "bucket"),
    )
    with op.batch_alter_table("count_rollups", schema=None) as batch_op:
        batch_op.create_index("ix_count_rollups_bucket", ["grain", "bucket"], unique=False)
    op.create_table(
        "entity_sightings",
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("first_seen", monitor.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", monitor.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sightings", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("symbol"),
    )


def downgrade() -> None:
    op.drop_table("entity_sightings")
    with op.batch_alter_table("count_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_count_rollups_bucket")
    op.drop_table("count_rollups")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_column("replays")
        batch_op.drop_column("replayed_at")
        batch_op.drop_column("record_time")
