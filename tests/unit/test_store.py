"""The store on each backend (SQLite, and a real PostgreSQL server): migrations build exactly
the declared schema, and writers in several processes at once lose nothing."""

import multiprocessing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text

from rayline.errors import PlatformFailure
from rayline.store import executions as store
from rayline.store import migrate
from rayline.store.db import Database
from rayline.store.models import Base, Execution, ExecutionLog, utcnow
from rayline.store.record_sql import sql_sink
from rayline.store.record_writer import RecordWriter

PROCESSES, EXECUTIONS_EACH = 4, 40


def test_migrations_build_exactly_the_schema_the_models_declare(any_database):
    with any_database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    assert migrate.current_revision(any_database) == migrate.head_revision()
    migrate.upgrade(any_database)  # at every start-up: nothing to do the second time
    assert migrate.current_revision(any_database) == migrate.head_revision()


def test_a_database_made_just_before_migrations_is_adopted_and_upgraded(any_database_url):
    db = Database(any_database_url)
    tables = [t for name, t in Base.metadata.tables.items() if name not in migrate.ADDED_SINCE]
    Base.metadata.create_all(db.engine, tables=tables)  # what `rayline up` did before migrations,
    with db.engine.begin() as connection:  # without what migrations added since
        for table, column in migrate.COLUMNS_ADDED_SINCE:
            connection.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        for index in migrate.INDEXES_ADDED_SINCE:
            connection.execute(text(f"DROP INDEX {index}"))
    with db.session() as session:
        session.add(Execution(execution_id="kept-1", pipeline_name="p", status="Succeeded", inputs=[], outputs=[]))
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    with db.session() as session:
        assert session.get(Execution, "kept-1").status == "Succeeded"  # nothing lost
    db.dispose()


def test_an_older_database_is_refused_not_damaged(any_database_url):
    db = Database(any_database_url)
    Base.metadata.create_all(db.engine, tables=[Base.metadata.tables["pipelines"], Base.metadata.tables["executions"]])
    with pytest.raises(PlatformFailure, match="older than its first migration"):
        migrate.upgrade(db)
    assert migrate.current_revision(db) is None
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Execution)) == 0
    db.dispose()


def _write(url: str, journal: str, worker: int) -> None:
    db = Database(url)
    writer = RecordWriter(sql_sink(db), journal_path=Path(journal), interval_s=0.01)
    for _ in range(EXECUTIONS_EACH):
        number = store.take_numbers(db, store.execution_counter("race"))[0]  # one at a time: most contention
        execution_id = f"race-{number}"
        writer.execution_started(execution_id, "pipe", "race", [], utcnow())
        writer.execution_log(execution_id, "stdout", f"from worker {worker}")
        writer.execution_finished(execution_id, store.SUCCEEDED, [], None)
    writer.close()


def test_writers_in_several_processes_lose_nothing(any_database, tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write, args=(any_database.url, str(tmp_path / f"w{i}.journal"), i))
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    total = PROCESSES * EXECUTIONS_EACH
    with any_database.session() as session:
        ids = set(session.scalars(select(Execution.execution_id)))
        statuses = set(session.scalars(select(Execution.status)))
        logs = session.scalar(select(func.count()).select_from(ExecutionLog))
    assert ids == {f"race-{n}" for n in range(1, total + 1)}  # every number once, none lost or reused
    assert statuses == {store.SUCCEEDED} and logs == total


def test_files_of_executions_ended_before_the_retention_go_and_their_records_stay(any_database):
    from datetime import timedelta

    from rayline.domain.files import FileValue

    now = utcnow()
    with any_database.session() as session:
        for execution_id, end in (
            ("old-1", now - timedelta(days=8)),
            ("new-1", now - timedelta(hours=1)),
            ("running-1", None),
        ):
            session.add(
                Execution(
                    execution_id=execution_id,
                    pipeline_name="p",
                    status="Running" if end is None else "Succeeded",
                    inputs=[],
                    outputs=[],
                    end_date=end,
                )
            )
    with any_database.session() as session:
        for execution_id in ("old-1", "new-1", "running-1"):
            store.save_files(session, execution_id, "output", {"doc": FileValue("a.txt", b"x")})
    assert store.delete_files_ended_before(any_database, now - timedelta(days=7)) == 1
    assert store.load_file(any_database, "old-1", "output", "doc") is None
    assert store.load_file(any_database, "new-1", "output", "doc") == FileValue("a.txt", b"x")
    assert store.load_file(any_database, "running-1", "output", "doc") is not None
    with any_database.session() as session:
        assert session.get(Execution, "old-1").status == "Succeeded"
