"""A background writer that commits execution records and logs in batches, with a journal.

A warm replica answers in about a millisecond; one SQL commit per call would double that. Calls
hand their events to this writer and return; a thread commits everything queued every
``interval_s`` in one transaction, in order. ``flush()`` waits until all queued events are
committed.

So that a replica that dies (a user's ``os._exit``, the OOM killer) loses nothing, each event is
first appended to the replica's journal file (one ``os.write``, which outlives the process), and
the file is emptied once its events are committed. The journal is held under an exclusive
``flock``, released by the kernel when the process dies: the next replica of the deployment
replays the journals nobody holds (``replay_orphans``). Replaying is idempotent.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from rayline.store import executions as store
from rayline.store.db import Database
from rayline.store.models import DeploymentLog, Execution, ExecutionLog, utcnow

logger = logging.getLogger(__name__)

Event = dict[str, Any]


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _decode_times(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {**row, **{k: datetime.fromisoformat(row[k]) for k in keys if isinstance(row.get(k), str)}}


_FINISH = (update(Execution)
           # Plain comparisons: an IN list cannot be part of a multi-row (executemany) statement.
           .where(Execution.execution_id == bindparam("b_execution_id"),
                  or_(Execution.status == store.PENDING, Execution.status == store.RUNNING))
           .values(status=bindparam("b_status"), end_date=bindparam("b_end_date"), error=bindparam("b_error"),
                   outputs=bindparam("b_outputs")))


def apply_batch(session: Session, events: list[Event], replaying: bool = False) -> None:
    """Write events as a few multi-row statements: every start, then every log, then every end
    (an end always follows its start, so this keeps their meaning). Replaying a journal that may
    hold committed events skips the starts already written; ends only apply to unfinished rows."""
    by_kind: dict[str, list[Event]] = {}
    for event in events:
        by_kind.setdefault(event["kind"], []).append(event)
    starts = [_decode_times(e["row"], "created_at", "start_date") for e in by_kind.get("started", [])]
    if replaying and starts:
        known = set(session.scalars(select(Execution.execution_id).where(
            Execution.execution_id.in_([row["execution_id"] for row in starts]))))
        starts = [row for row in starts if row["execution_id"] not in known]
    if starts:
        session.execute(insert(Execution), starts)
    for kind, table in (("execution_log", ExecutionLog), ("deployment_log", DeploymentLog)):
        rows = [_decode_times(e["row"], "timestamp") for e in by_kind.get(kind, [])]
        if rows:
            session.execute(insert(table), rows)
    ends = [{"b_execution_id": e["execution_id"], "b_status": e["values"]["status"],
             "b_end_date": _decode_times(e["values"], "end_date")["end_date"], "b_error": e["values"].get("error"),
             "b_outputs": e["values"].get("outputs", [])} for e in by_kind.get("finished", [])]
    if ends:
        session.connection().execute(_FINISH, ends)


class Journal:
    """An append-only file of events, exclusively locked by its writer while it lives."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Held around "append then enqueue" and around "queue empty? then truncate", so a
        # truncation never drops an event that is not committed yet.
        self.lock = threading.Lock()

    def append(self, event: Event) -> None:
        os.write(self._fd, (json.dumps(event, default=_encode, separators=(",", ":")) + "\n").encode())

    def truncate(self) -> None:
        os.ftruncate(self._fd, 0)

    def close(self, remove: bool) -> None:
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)


def replay_orphans(db: Database, folder: Path) -> int:
    """Apply the events of every journal in ``folder`` whose writer is gone; returns how many."""
    replayed = 0
    for path in sorted(folder.glob("*.journal")) if folder.exists() else []:
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live replica holds it
            events = []
            for line in path.read_text().splitlines():
                try:
                    events.append(json.loads(line))
                except ValueError:  # a line cut short by the crash
                    continue
            with db.session() as session:
                apply_batch(session, events, replaying=True)
            replayed += len(events)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return replayed


class RecordWriter:
    def __init__(self, db: Database, journal_path: Path | None = None, interval_s: float = 0.05,
                 max_batch: int = 2000) -> None:
        self._db = db
        self._journal = Journal(journal_path) if journal_path else None
        self._queue: queue.Queue[Event | Callable | threading.Event | None] = queue.Queue()
        self._interval_s, self._max_batch = interval_s, max_batch
        self._thread = threading.Thread(target=self._run, name="rayline-record-writer", daemon=True)
        self._thread.start()

    def _put(self, event: Event) -> None:
        if self._journal is None:
            self._queue.put(event)
            return
        with self._journal.lock:
            self._journal.append(event)
            self._queue.put(event)

    # --- what callers record -------------------------------------------------------------------

    def execution_started(self, execution_id: str, pipeline_name: str, deployment_name: str,
                          inputs: list[dict[str, Any]], started_at: datetime) -> None:
        self._put({"kind": "started", "row": {
            "execution_id": execution_id, "pipeline_name": pipeline_name, "deployment_name": deployment_name,
            "status": store.RUNNING, "inputs": inputs, "outputs": [], "created_at": started_at,
            "start_date": started_at}})

    def execution_finished(self, execution_id: str, status: str, outputs: list[dict[str, Any]] | None,
                           error: str | None) -> None:
        values: dict[str, Any] = {"status": status, "end_date": utcnow(), "error": error}
        if outputs is not None:
            values["outputs"] = outputs
        self._put({"kind": "finished", "execution_id": execution_id, "values": values})

    def execution_log(self, execution_id: str, stream: str, message: str) -> None:
        self._put({"kind": "execution_log", "row": {"execution_id": execution_id, "timestamp": utcnow(),
                                                     "stream": stream, "message": message}})

    def deployment_log(self, deployment_name: str, message: str, stream: str = "stdout",
                       pod_id: str | None = None) -> None:
        self._put({"kind": "deployment_log", "row": {"deployment_name": deployment_name, "timestamp": utcnow(),
                                                      "stream": stream, "message": message, "pod_id": pod_id,
                                                      "type": "deployment"}})

    def call(self, operation: Callable[[Session], None]) -> None:
        """A write that needs no journal (it describes the replica, which a successor rewrites)."""
        self._queue.put(operation)

    # --- committing ----------------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        committed = self.flush(timeout_s)
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._journal is not None:
            self._journal.close(remove=committed)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[Event | Callable] = []
            markers: list[threading.Event] = []
            item = self._queue.get()
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    batch.append(item)
                if stopping or len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get(timeout=self._interval_s if not markers else 0.001)
                except queue.Empty:
                    break
            if self._commit(batch) and self._journal is not None:
                with self._journal.lock:
                    if self._queue.empty():  # everything journaled so far is committed
                        self._journal.truncate()
            for marker in markers:
                marker.set()

    def _commit(self, batch: list[Event | Callable]) -> bool:
        if not batch:
            return True
        for attempt in range(3):
            try:
                with self._db.session() as session:
                    apply_batch(session, [item for item in batch if not callable(item)])
                    for item in batch:
                        if callable(item):
                            item(session)
                return True
            except Exception:  # keep the replica serving; the journal keeps the events
                logger.exception("record batch failed (attempt %d)", attempt + 1)
        logger.error("%d records not committed after 3 attempts; they stay in the journal", len(batch))
        return False
