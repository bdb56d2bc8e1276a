"""The database schema, managed by Alembic migrations (``rayline/store/migrations``), applied at
start-up by ``rayline up``: a new database gets every migration, an older one the missing ones."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from rayline.errors import PlatformFailure
from rayline.store.db import Database
from rayline.store.models import Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# The schema that Rayline had just before migrations, and what came after it.
FIRST_REVISION, ADDED_SINCE = (
    "0001",
    {"packages", "resource_samples", "metric_values", "list_metric_batches", "console_revoked_sessions"},
)  # tables; and columns:
COLUMNS_ADDED_SINCE = {
    ("deployments", "min_pods"),
    ("deployments", "max_pods"),
    ("deployments", "scale_down_after_s"),
    ("deployments", "standby_after_s"),
    ("pods", "flushed"),
    ("pods", "node_id"),
    ("pipelines", "plain_def"),
}
# Indexes on tables of the first revision (0007: the console's pages).
INDEXES_ADDED_SINCE = {
    "ix_executions_pipeline_created",
    "ix_executions_pipeline_status_created",
    "ix_executions_deployment_created",
    "ix_deployment_logs_name_id",
    "ix_execution_logs_execution_id",
}


def upgrade(db: Database) -> None:
    """Bring the database to the latest schema (in one transaction where the database allows)."""
    with db.engine.begin() as connection:
        config = _config()
        config.attributes["connection"] = connection
        context = MigrationContext.configure(connection)
        if context.get_current_revision() is None and inspect(connection).has_table("pipelines"):
            _adopt(context)
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


def _adopt(context: MigrationContext) -> None:
    """A database made just before migrations (its tables, no revision) is the first revision,
    if its schema is that one: anything older cannot be upgraded."""
    differences = [
        d
        for d in compare_metadata(context, Base.metadata)
        if not (d[0] == "add_table" and d[1].name in ADDED_SINCE)
        and not (d[0] == "add_index" and (d[1].table.name in ADDED_SINCE or d[1].name in INDEXES_ADDED_SINCE))
        and not (d[0] == "add_column" and (d[2], d[3].name) in COLUMNS_ADDED_SINCE)
    ]
    if differences:
        raise PlatformFailure(
            "The database holds Rayline tables older than its first migration; they cannot be upgraded. Move it "
            "aside (e.g. delete $RAYLINE_HOME/rayline.db) and start again."
        )


def head_revision() -> str | None:
    """The newest migration's revision (None only for a folder without migrations)."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
