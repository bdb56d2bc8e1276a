"""Indexes for the console's pages: a pipeline's or a deployment's executions newest first (paged,
filtered by status), and a deployment's or an execution's log read by row id (a page's last lines,
a live tail's cursor), without sorting all their rows

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_executions_pipeline_created": ("executions", ["pipeline_name", "created_at"]),
    "ix_executions_pipeline_status_created": ("executions", ["pipeline_name", "status", "created_at"]),
    "ix_executions_deployment_created": ("executions", ["deployment_name", "created_at"]),
    "ix_deployment_logs_name_id": ("deployment_logs", ["deployment_name", "id"]),
    "ix_execution_logs_execution_id": ("execution_logs", ["execution_id", "id"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns, if_not_exists=True)


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table, if_exists=True)
