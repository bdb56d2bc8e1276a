"""Alembic's environment: the schema is rayline.store.models; the connection is the one
``rayline.store.migrate.upgrade`` hands over (SQLite or PostgreSQL)."""

from __future__ import annotations

from alembic import context

from rayline.store.models import Base

connection = context.config.attributes["connection"]
# SQLite cannot ALTER most things: batch mode copies the table instead, on SQLite only.
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
