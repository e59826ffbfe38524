"""entity sentiment: the sentiment toward each linked company; chunks read per document

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entity_sentiment", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("chunks", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cut", sa.Text(), nullable=True))
    with op.batch_alter_table("document_entities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sentiment", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("sentiment_score", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("document_entities", schema=None) as batch_op:
        batch_op.drop_column("sentiment_score")
        batch_op.drop_column("sentiment")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("cut")
        batch_op.drop_column("chunks")
        batch_op.drop_column("entity_sentiment")
