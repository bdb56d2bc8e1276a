"""Pipeline packages kept in SQL for multi-node clusters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 22:14:16.122325
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rayline.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "packages",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", rayline.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    op.drop_table("packages")
