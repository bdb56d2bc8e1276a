"""The database schema, managed by Alembic migrations (``rayline/store/migrations``), applied at
start-up by ``rayline up``: a new database gets every migration, an older one the missing ones."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from rayline.errors import PlatformFailure
from rayline.store.db import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(db: Database) -> None:
    """Bring the database to the latest schema (in one transaction where the database allows)."""
    with db.engine.begin() as connection:
        if MigrationContext.configure(connection).get_current_revision() is None and \
                inspect(connection).has_table("pipelines"):
            raise PlatformFailure(
                "The database holds Rayline tables made before migrations existed; it cannot be "
                "upgraded. Move it aside (e.g. delete $RAYLINE_HOME/rayline.db) and start again.")
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
