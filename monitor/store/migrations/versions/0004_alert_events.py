"""alert events: alert transitions kept for the alerts topic until they are produced

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:20:00
"""

import sqlalchemy as sa
from alembic import op

import monitor.store.schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", monitor.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", monitor.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_events_published", "alert_events", ["published_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alert_events_published", table_name="alert_events")
    op.drop_table("alert_events")
