"""A background writer that commits execution records and logs in batches.

A warm replica answers in about a millisecond; one SQL commit per call would double that. Calls
queue what they record here and return; a thread commits everything queued every
``interval_s`` in one transaction, in order. ``flush()`` waits until all queued work is
committed (on shutdown, and where a reader must see it at once).
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from rayline.store import executions as store
from rayline.store.db import Database
from rayline.store.models import DeploymentLog, Execution, ExecutionLog, utcnow

logger = logging.getLogger(__name__)

Operation = Callable[[Session], None]


class RecordWriter:
    def __init__(self, db: Database, interval_s: float = 0.05, max_batch: int = 2000) -> None:
        self._db = db
        self._queue: queue.Queue[Operation | threading.Event | None] = queue.Queue()
        self._interval_s, self._max_batch = interval_s, max_batch
        self._thread = threading.Thread(target=self._run, name="rayline-record-writer", daemon=True)
        self._thread.start()

    # --- what callers record -------------------------------------------------------------------

    def execution_started(self, execution_id: str, pipeline_name: str, deployment_name: str,
                          inputs: list[dict[str, Any]], started_at: datetime) -> None:
        row = {"execution_id": execution_id, "pipeline_name": pipeline_name, "deployment_name": deployment_name,
               "status": store.RUNNING, "inputs": inputs, "outputs": [], "created_at": started_at,
               "start_date": started_at}
        self._queue.put(lambda session: session.execute(insert(Execution), [row]))

    def execution_finished(self, execution_id: str, status: str, outputs: list[dict[str, Any]] | None,
                           error: str | None) -> None:
        values = {"status": status, "end_date": utcnow(), "error": error}
        if outputs is not None:
            values["outputs"] = outputs
        self._queue.put(lambda session: session.execute(
            update(Execution).where(Execution.execution_id == execution_id,
                                    Execution.status.in_(store.UNFINISHED_STATUSES)).values(**values)))

    def execution_log(self, execution_id: str, stream: str, message: str) -> None:
        row = {"execution_id": execution_id, "timestamp": utcnow(), "stream": stream, "message": message}
        self._queue.put(lambda session: session.execute(insert(ExecutionLog), [row]))

    def deployment_log(self, deployment_name: str, message: str, stream: str = "stdout",
                       pod_id: str | None = None) -> None:
        row = {"deployment_name": deployment_name, "timestamp": utcnow(), "stream": stream, "message": message,
               "pod_id": pod_id, "type": "deployment"}
        self._queue.put(lambda session: session.execute(insert(DeploymentLog), [row]))

    def call(self, operation: Operation) -> None:
        self._queue.put(operation)

    # --- committing ----------------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        self.flush(timeout_s)
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[Operation] = []
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
            self._commit(batch)
            for marker in markers:
                marker.set()

    def _commit(self, batch: list[Operation]) -> None:
        if not batch:
            return
        for attempt in range(3):
            try:
                with self._db.session() as session:
                    for operation in batch:
                        operation(session)
                return
            except Exception:  # keep the replica serving; retry, then report what was lost
                logger.exception("record batch failed (attempt %d)", attempt + 1)
        logger.error("dropped %d records after 3 failed attempts", len(batch))
