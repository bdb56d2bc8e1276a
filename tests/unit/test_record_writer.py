"""The batch writer's journal: nothing queued is lost when the process dies before committing."""

import multiprocessing
import os

from rayline.store.db import Database
from rayline.store.models import Execution, ExecutionLog, utcnow
from rayline.store.record_writer import RecordWriter, replay_orphans


def _record_then_die(url: str, journal: str) -> None:
    writer = RecordWriter(Database(url), journal_path=__import__("pathlib").Path(journal), interval_s=60)
    writer.execution_started("dep-1", "pipe", "dep", [], utcnow())
    writer.execution_log("dep-1", "stdout", "hello")
    os._exit(1)  # before the 60 s batch interval: nothing reached SQL


def test_a_dead_writers_journal_is_replayed_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = Database(url)
    db.create_schema()
    journal = tmp_path / "journal" / "pod-a.journal"
    process = multiprocessing.get_context("fork").Process(target=_record_then_die, args=(url, str(journal)))
    process.start()
    process.join(30)
    with db.session() as session:
        assert session.get(Execution, "dep-1") is None
    assert replay_orphans(db, journal.parent) == 2
    with db.session() as session:
        assert session.get(Execution, "dep-1").status == "Running"
        assert [log.message for log in session.query(ExecutionLog)] == ["hello"]
    assert not journal.exists()
    assert replay_orphans(db, journal.parent) == 0


def test_a_live_writers_journal_is_left_alone_and_emptied_after_commits(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.create_schema()
    journal = tmp_path / "journal" / "pod-b.journal"
    writer = RecordWriter(db, journal_path=journal, interval_s=0.01)
    writer.execution_started("dep-2", "pipe", "dep", [], utcnow())
    assert replay_orphans(db, journal.parent) == 0  # held by a live writer
    assert writer.flush()
    writer.execution_finished("dep-2", "Succeeded", [], None)
    assert writer.flush()
    with db.session() as session:
        assert session.get(Execution, "dep-2").status == "Succeeded"
    assert journal.stat().st_size == 0
    writer.close()
    assert not journal.exists()


def test_a_batch_of_many_executions_is_written_whole(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.create_schema()
    writer = RecordWriter(db, interval_s=0.5)
    for i in range(50):
        writer.execution_started(f"dep-{i}", "pipe", "dep", [], utcnow())
        writer.execution_log(f"dep-{i}", "stdout", f"line {i}")
        writer.execution_finished(f"dep-{i}", "Succeeded" if i % 2 else "Failed", [{"value": i}] if i % 2 else None,
                                  None if i % 2 else "boom")
    assert writer.flush()
    with db.session() as session:
        rows = {row.execution_id: row for row in session.query(Execution)}
        assert len(rows) == 50 and session.query(ExecutionLog).count() == 50
        assert rows["dep-3"].status == "Succeeded" and rows["dep-3"].outputs == [{"value": 3}]
        assert rows["dep-4"].status == "Failed" and rows["dep-4"].error == "boom"
    writer.close()
