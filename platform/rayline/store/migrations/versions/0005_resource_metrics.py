"""Resource metrics: what each Ray node used at each sampling round of the control plane

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_samples",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("sampled_at", sa.DateTime(), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("node_ip", sa.String(64), nullable=False),
        sa.Column("is_head", sa.Boolean(), nullable=False),
        sa.Column("cpu_percent", sa.Double(), nullable=False),
        sa.Column("ram_used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("ram_total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("disk_used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("disk_total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("network_received_bytes", sa.BigInteger(), nullable=False),
        sa.Column("network_sent_bytes", sa.BigInteger(), nullable=False),
        sa.Column("gpu_percent", sa.Double(), nullable=True),
        sa.Column("vram_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("vram_total_bytes", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_resource_samples_sampled_at", "resource_samples", ["sampled_at"])


def downgrade() -> None:
    op.drop_index("ix_resource_samples_sampled_at", table_name="resource_samples")
    op.drop_table("resource_samples")
