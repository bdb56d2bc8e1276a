"""Whether a pipeline's function is a plain `def` (pipelines.plain_def), so that its warm pods
answer HTTP on Serve's main event loop: its user code only ever runs in their threads

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipelines") as table:
        # NULL for the pipelines created before: not known, so their pods keep Serve's default.
        table.add_column(sa.Column("plain_def", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipelines") as table:
        table.drop_column("plain_def")
