"""The batch writer: batches close on time, one bad event loses nothing else, and a dead
writer's journal is replayed once, without what was already committed."""

import multiprocessing
import os
import time
from pathlib import Path

from rayline.store import migrate
from rayline.store.db import Database
from rayline.store.models import Execution, ExecutionLog, utcnow
from rayline.store.record_sql import sql_sink
from rayline.store.record_writer import RecordWriter, replay_orphans


def database(tmp_path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(db)
    return db


def _record_then_die(url: str, journal: str) -> None:
    writer = RecordWriter(sql_sink(Database(url)), journal_path=Path(journal), interval_s=0.05)
    writer.execution_started("dep-1", "pipe", "dep", [], utcnow())
    assert writer.flush()  # committed: a replay must not write it again
    writer.execution_log("dep-1", "stdout", "hello")
    writer._interval_s = 60
    writer.execution_finished("dep-1", "Succeeded", [], None)
    time.sleep(0.2)
    os._exit(1)  # before the batch holding the end was committed


def test_a_dead_writers_journal_is_replayed_once_without_what_was_committed(tmp_path, any_database):
    db = any_database
    folder = tmp_path / "journal"
    process = multiprocessing.get_context("fork").Process(
        target=_record_then_die, args=(db.url, str(folder / "pod-a.journal"))
    )
    process.start()
    process.join(30)
    with db.session() as session:
        assert session.get(Execution, "dep-1").status == "Running"
    assert replay_orphans(sql_sink(db), folder) == ["pod-a"]
    with db.session() as session:
        assert session.get(Execution, "dep-1").status == "Succeeded"
        assert [log.message for log in session.query(ExecutionLog)] == ["hello"]
    assert list(folder.iterdir()) == []
    assert replay_orphans(sql_sink(db), folder) == []


def test_a_live_writers_journal_is_left_alone(tmp_path):
    db = database(tmp_path)
    folder = tmp_path / "journal"
    writer = RecordWriter(sql_sink(db), journal_path=folder / "pod-b.journal", interval_s=0.01)
    writer.execution_started("dep-2", "pipe", "dep", [], utcnow())
    assert replay_orphans(sql_sink(db), folder) == []  # held by a live writer
    writer.execution_finished("dep-2", "Succeeded", [], None)
    assert writer.flush()
    assert int((folder / "pod-b.done").read_text()) == 2
    writer.close()
    assert list(folder.iterdir()) == []


def test_batches_close_on_time_under_a_steady_trickle(tmp_path):
    db = database(tmp_path)
    writer = RecordWriter(sql_sink(db), interval_s=0.05)
    for i in range(20):  # one event every 30 ms: never 50 ms of silence
        writer.execution_started(f"t-{i}", "pipe", "dep", [], utcnow())
        time.sleep(0.03)
    with db.session() as session:
        assert session.query(Execution).count() >= 15
    writer.close()


def test_one_bad_event_does_not_take_its_batch_with_it(tmp_path):
    db = database(tmp_path)
    writer = RecordWriter(sql_sink(db), interval_s=0.5)
    writer.execution_started("good-1", "pipe", "dep", [], utcnow())
    writer.execution_log("missing", "stdout", "a log line of an execution that does not exist")
    writer.execution_started("good-2", "pipe", "dep", [], utcnow())
    assert writer.flush(30)
    with db.session() as session:
        assert {e.execution_id for e in session.query(Execution)} == {"good-1", "good-2"}
    writer.close()


def test_a_batch_of_many_executions_is_written_whole(tmp_path):
    db = database(tmp_path)
    writer = RecordWriter(sql_sink(db), interval_s=0.5)
    for i in range(50):
        writer.execution_started(f"dep-{i}", "pipe", "dep", [], utcnow())
        writer.execution_log(f"dep-{i}", "stdout", f"line {i}")
        writer.execution_finished(
            f"dep-{i}", "Succeeded" if i % 2 else "Failed", [{"value": i}] if i % 2 else None, None if i % 2 else "boom"
        )
    assert writer.flush()
    with db.session() as session:
        rows = {row.execution_id: row for row in session.query(Execution)}
        assert len(rows) == 50 and session.query(ExecutionLog).count() == 50
        assert rows["dep-3"].status == "Succeeded" and rows["dep-3"].outputs == [{"value": 3}]
        assert rows["dep-4"].status == "Failed" and rows["dep-4"].error == "boom"
    writer.close()


def test_what_is_recorded_after_close_is_dropped_not_written_to_a_closed_journal(tmp_path):
    written: list[dict] = []
    writer = RecordWriter(lambda events, replaying=False: written.extend(events), tmp_path / "pod.journal")
    writer.deployment_log("d", "before", "stdout")
    writer.close()
    writer.deployment_log("d", "after", "stdout")  # an abandoned execution's last line, say
    assert [event["row"]["message"] for event in written] == ["before"]
    assert not list(tmp_path.glob("*.journal"))  # committed, removed; nothing written after


def test_a_journal_line_holding_line_separators_and_a_torn_last_line_replay(tmp_path):
    # orjson writes UTF-8 as is: U+2028 and U+0085 are inside a line, never between lines; a
    # crash mid-character leaves a last line that is not even UTF-8.
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(db)
    folder = tmp_path / "journal"
    folder.mkdir()
    writer = RecordWriter(lambda events, replaying=False: None, journal_path=folder / "pod-b.journal", interval_s=60)
    writer.execution_started("dep-2", "pipe", "dep", [], utcnow())
    writer.execution_log("dep-2", "stdout", "before\u2028after\x85end é")
    journal = next(folder.glob("pod-b.*.journal"))
    content = journal.read_bytes() + b'{"kind": "execution_log", "row": {"message": "cut' + "é".encode()[:1]
    writer._journal.close(remove=False)  # as a crash leaves it: files there, lock released
    journal.write_bytes(content)
    assert replay_orphans(sql_sink(db), folder) == ["pod-b"]
    with db.session() as session:
        assert [log.message for log in session.query(ExecutionLog)] == ["before\u2028after\x85end é"]
