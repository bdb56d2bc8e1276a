"""Pod settings of low-latency deployments (min_pods, max_pods, scale_down_after_s, standby_after_s)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing low-latency deployments keep what they had: one pod, always on.
    with op.batch_alter_table("deployments") as table:
        table.add_column(sa.Column("min_pods", sa.Integer(), nullable=True))
        table.add_column(sa.Column("max_pods", sa.Integer(), nullable=True))
        table.add_column(sa.Column("scale_down_after_s", sa.Double(), nullable=True))
        table.add_column(sa.Column("standby_after_s", sa.Double(), nullable=True))
    op.execute(
        "UPDATE deployments SET min_pods = 1, max_pods = 1, scale_down_after_s = 60, standby_after_s = 600 "
        "WHERE mode = 'low_latency'"
    )
    with op.batch_alter_table("pods") as table:
        table.add_column(sa.Column("flushed", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("pods") as table:
        table.drop_column("flushed")
    with op.batch_alter_table("deployments") as table:
        for column in ("standby_after_s", "scale_down_after_s", "max_pods", "min_pods"):
            table.drop_column(column)
