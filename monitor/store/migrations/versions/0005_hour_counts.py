"""hour counts: exact hourly sums of minute_counts kept at write time, and a covering minute index, for the detector's cold start

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COUNTS = "total, negative, neutral, positive, novel_total, novel_negative"
_SUMS = ", ".join(f"SUM({c})" for c in _COUNTS.split(", "))


def upgrade() -> None:
    op.create_table(
        "hour_counts",
        sa.Column("key_kind", sa.String(length=16), nullable=False),
        sa.Column("key_value", sa.String(length=128), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("neutral", sa.Integer(), nullable=False),
        sa.Column("positive", sa.Integer(), nullable=False),
        sa.Column("novel_total", sa.Integer(), nullable=False),
        sa.Column("novel_negative", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "key_kind", "key_value"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("minute_counts", schema=None) as batch_op:
        batch_op.drop_index("ix_minute_counts_minute")
        batch_op.create_index(
            "ix_minute_counts_minute_cover",
            ["minute", "key_kind", "key_value", "novel_total", "novel_negative", "total", "negative"],
            unique=False,
        )
    # The hours of the minutes already stored (a database upgraded in place).
    if op.get_bind().dialect.name == "postgresql":
        hour = "CAST(FLOOR(EXTRACT(EPOCH FROM minute) / 3600) AS BIGINT)"
    else:
        hour = "CAST(strftime('%s', minute) AS INTEGER) / 3600"
    op.execute(
        f"INSERT INTO hour_counts (key_kind, key_value, hour, {_COUNTS}) "
        f"SELECT key_kind, key_value, {hour} AS h, {_SUMS} FROM minute_counts GROUP BY key_kind, key_value, h"
    )


def downgrade() -> None:
    with op.batch_alter_table("minute_counts", schema=None) as batch_op:
        batch_op.drop_index("ix_minute_counts_minute_cover")
        batch_op.create_index("ix_minute_counts_minute", ["minute"], unique=False)
    op.drop_table("hour_counts")
