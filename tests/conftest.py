"""Fixtures shared by unit and integration tests: the SQL databases the store runs on. And the
`integration` mark, put on every test under tests/integration, so that `-m "not integration"`
(`make test-unit`) runs the tests that start no platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayline.store import migrate
from rayline.store.db import Database
from tests.databases import PostgresServer

INTEGRATION = Path(__file__).resolve().parent / "integration"


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by mark (-m)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def postgres_server():
    try:
        server = PostgresServer()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database_url(request, tmp_path) -> str:
    """An empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def any_database(any_database_url) -> Database:
    """A migrated database, on each backend."""
    db = Database(any_database_url)
    migrate.upgrade(db)
    yield db
    db.dispose()
