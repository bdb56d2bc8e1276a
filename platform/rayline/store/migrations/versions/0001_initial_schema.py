"""The schema of Rayline 0.1: pipelines, executions, deployments, pods, environment variables

Revision ID: 0001
Revises:
Create Date: 2026-11-25 22:12:37.230753
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rayline.store.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "credentials",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("updated_at", rayline.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "deployment_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_name", sa.String(length=63), nullable=False),
        sa.Column("timestamp", rayline.store.models.UTCDateTime(), nullable=False),
        sa.Column("stream", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("pod_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deployment_logs", schema=None) as batch_op:
        batch_op.create_index("ix_deployment_logs_name_time", ["deployment_name", "timestamp"], unique=False)

    op.create_table(
        "deployments",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("pipeline_name", sa.String(length=63), nullable=False),
        sa.Column("execution_rule", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("endpoint_url_path", sa.String(length=255), nullable=True),
        sa.Column("endpoint_token_hash", sa.String(length=128), nullable=True),
        sa.Column("endpoint_token_sealed", sa.Text(), nullable=True),
        sa.Column("inputs_mapping", sa.JSON(), nullable=False),
        sa.Column("outputs_mapping", sa.JSON(), nullable=False),
        sa.Column("enable_parallel_executions", sa.Boolean(), nullable=False),
        sa.Column("max_parallel_executions_per_pod", sa.Integer(), nullable=False),
        sa.Column("max_queued_executions", sa.Integer(), nullable=False),
        sa.Column("ram_request", sa.String(length=32), nullable=True),
        sa.Column("gpu_request", sa.Integer(), nullable=True),
        sa.Column("execution_timeout_s", sa.Double(), nullable=True),
        sa.Column("schedule", sa.String(length=255), nullable=True),
        sa.Column("next_run_at", rayline.store.models.UTCDateTime(), nullable=True),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("has_been_up", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("version_updated_at", rayline.store.models.UTCDateTime(), nullable=False),
        sa.Column("created_at", rayline.store.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", rayline.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("endpoint_url_path"),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployments_next_run_at"), ["next_run_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployments_pipeline_name"), ["pipeline_name"], unique=False)

    op.create_table(
        "environment_variables",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value_sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", rayline.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "executions",
        sa.Column("execution_id", sa.String(length=160), nullable=False),
        sa.Column("pipeline_name", sa.String(length=63), nullable=False),
        sa.Column("deployment_name", sa.String(length=63), nullable=True),
        sa.Column("pod_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", rayline.store.models.UTCDateTime(), nullable=False),
        sa.Column("start_date", rayline.store.models.UTCDateTime(), nullable=True),
        sa.Column("end_date", rayline.store.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("execution_id"),
    )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_executions_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_executions_deployment_name"), ["deployment_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_executions_pipeline_name"), ["pipeline_name"], unique=False)

    op.create_table(
        "pipelines",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("function_path", sa.String(length=1024), nullable=False),
        sa.Column("function_name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("container_config", sa.JSON(), nullable=False),
        sa.Column("requirements", sa.JSON(), nullable=False),
        sa.Column("package_uri", sa.String(length=2048), nullable=False),
        sa.Column("package_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", rayline.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "pods",
        sa.Column("pod_id", sa.String(length=64), nullable=False),
        sa.Column("deployment_name", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("token_fingerprint", sa.String(length=16), nullable=True),
        sa.Column("running_executions", sa.Integer(), nullable=False),
        sa.Column("waiting_executions", sa.Integer(), nullable=False),
        sa.Column("environment_version", sa.Integer(), nullable=False),
        sa.Column("started_at", rayline.store.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", rayline.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pod_id"),
    )
    with op.batch_alter_table("pods", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pods_deployment_name"), ["deployment_name"], unique=False)

    op.create_table(
        "execution_files",
        sa.Column("execution_id", sa.String(length=160), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.execution_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("execution_id", "direction", "name"),
    )
    op.create_table(
        "execution_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("execution_id", sa.String(length=160), nullable=False),
        sa.Column("timestamp", rayline.store.models.UTCDateTime(), nullable=False),
        sa.Column("stream", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.execution_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("execution_logs", schema=None) as batch_op:
        batch_op.create_index("ix_execution_logs_execution_time", ["execution_id", "timestamp"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("execution_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_logs_execution_time")

    op.drop_table("execution_logs")
    op.drop_table("execution_files")
    with op.batch_alter_table("pods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pods_deployment_name"))

    op.drop_table("pods")
    op.drop_table("pipelines")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_executions_pipeline_name"))
        batch_op.drop_index(batch_op.f("ix_executions_deployment_name"))
        batch_op.drop_index(batch_op.f("ix_executions_created_at"))

    op.drop_table("executions")
    op.drop_table("environment_variables")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_pipeline_name"))
        batch_op.drop_index(batch_op.f("ix_deployments_next_run_at"))

    op.drop_table("deployments")
    with op.batch_alter_table("deployment_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_deployment_logs_name_time")

    op.drop_table("deployment_logs")
    op.drop_table("credentials")
    op.drop_table("counters")
