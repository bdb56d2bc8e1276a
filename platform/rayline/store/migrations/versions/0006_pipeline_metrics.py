"""Pipeline metrics: single values (the last one recorded wins) and lists, recorded by executions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _owner_columns() -> list[sa.Column]:
    return [
        sa.Column("pipeline_name", sa.String(63), nullable=False),
        sa.Column("deployment_name", sa.String(63), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "metric_values",
        sa.Column("execution_id", sa.String(160), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.Double(), nullable=False),
        *_owner_columns(),
    )
    op.create_index("ix_metric_values_name", "metric_values", ["name"])
    op.create_index("ix_metric_values_pipeline_name", "metric_values", ["pipeline_name"])
    op.create_index("ix_metric_values_deployment_name", "metric_values", ["deployment_name"])
    op.create_table(  # a row per call that appended values (a JSON list of them)
        "list_metric_batches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(160), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        *_owner_columns(),
    )
    op.create_index("ix_list_metric_batches_execution_name", "list_metric_batches", ["execution_id", "name"])
    op.create_index("ix_list_metric_batches_name", "list_metric_batches", ["name"])
    op.create_index("ix_list_metric_batches_pipeline_name", "list_metric_batches", ["pipeline_name"])
    op.create_index("ix_list_metric_batches_deployment_name", "list_metric_batches", ["deployment_name"])


def downgrade() -> None:
    op.drop_table("list_metric_batches")
    op.drop_table("metric_values")
