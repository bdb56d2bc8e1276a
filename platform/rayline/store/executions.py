"""Writes to execution records, shared by the control plane and the worker processes.

A record only moves forward: Pending -> Running -> Succeeded / Failed / Error. Every "finish"
is guarded so that the first final status written wins (a worker's result and the control
plane's crash report can race).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rayline.domain.files import FileValue
from rayline.domain.statuses import ExecutionStatus
from rayline.errors import InvalidInput
from rayline.store.db import Database, rowcount
from rayline.store.models import Counter, DeploymentLog, Execution, ExecutionFile, ExecutionLog, utcnow

# Short names for the statuses (rayline.domain.statuses), as the store and its callers use them.
PENDING, RUNNING, SUCCEEDED, FAILED, ERROR = (
    ExecutionStatus.PENDING,
    ExecutionStatus.RUNNING,
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.ERROR,
)
FINAL_STATUSES = (SUCCEEDED, FAILED, ERROR)
T = TypeVar("T")
UNFINISHED_STATUSES = (PENDING, RUNNING)


def _bump(session: Session, counter: str, count: int) -> range:
    last = session.execute(
        update(Counter).where(Counter.name == counter).values(value=Counter.value + count).returning(Counter.value)
    ).scalar_one_or_none()
    if last is None:
        session.add(Counter(name=counter, value=count))
        session.flush()  # a first number taken at once by another: IntegrityError here
        last = count
    return range(last - count + 1, last + 1)


def _numbered(db: Database, counter: str, count: int, write: Callable[[Session, range], T]) -> T:
    """``write(session, numbers)`` in the transaction that takes the next ``count`` numbers of
    ``counter`` (a row lock, or SQLite's write lock, serializes takers); retried when two first
    numbers of a counter are taken at once (the loser tries again)."""
    for _ in range(5):
        try:
            with db.session() as session:
                return write(session, _bump(session, counter, count))
        except IntegrityError:
            continue
    raise RuntimeError(f"could not take a number from counter {counter!r}")


def take_numbers(db: Database, counter: str, count: int = 1) -> range:
    """Atomically take the next ``count`` numbers of a counter."""
    return _numbered(db, counter, count, lambda session, numbers: numbers)


def execution_counter(name_prefix: str) -> str:
    return f"execution:{name_prefix}"


def create_execution(
    db: Database,
    *,
    name_prefix: str,
    pipeline_name: str,
    deployment_name: str | None,
    inputs: list[dict[str, Any]],
    status: str = PENDING,
) -> Execution:
    """A new record, numbered after the last of ``name_prefix``, in one transaction. ``status``
    is Running for an execution started at once (its start date is then now)."""

    def add(session: Session, numbers: range) -> Execution:
        now = utcnow()
        row = Execution(
            execution_id=f"{name_prefix}-{numbers[0]}",
            pipeline_name=pipeline_name,
            deployment_name=deployment_name,
            status=status,
            inputs=inputs,
            outputs=[],
            created_at=now,
            start_date=now if status == RUNNING else None,
        )
        session.add(row)
        return row

    return _numbered(db, execution_counter(name_prefix), 1, add)


def finish(
    db: Database,
    execution_id: str,
    status: str,
    *,
    outputs: list[dict[str, Any]] | None = None,
    error: str | None = None,
    start_date: datetime | None = None,
    logs: Iterable[tuple[datetime, str, str]] = (),
    files: dict[str, Any] | None = None,
    ending_log: Iterable[tuple[datetime, str, str]] = (),
) -> Execution | None:
    """Record the end of an execution, unless it already ended, in one transaction with the last
    of its ``logs`` and its output ``files`` (kept either way: its worker's own), and with
    ``ending_log`` only when this call ends it (the line that tells why it ended). Returns the
    record as this call ended it, or None when it had ended already."""
    values: dict[str, Any] = {"status": status, "end_date": utcnow(), "error": error}
    if outputs is not None:
        values["outputs"] = outputs
    if start_date is not None:  # when the code really started, as its worker saw it
        values["start_date"] = start_date
    with db.session() as session:
        ended = session.scalars(
            update(Execution)
            .where(Execution.execution_id == execution_id, Execution.status.in_(UNFINISHED_STATUSES))
            .values(**values)
            .returning(Execution)
        ).one_or_none()
        rows = _log_rows(execution_id, [*logs, *(ending_log if ended is not None else ())])
        if rows:
            session.execute(insert(ExecutionLog), rows)
        if files:
            save_files(session, execution_id, "output", files)
        return ended


def deployment_log_line(deployment_name: str, message: str, stream: str = "stdout") -> DeploymentLog:
    """One line of a deployment's own log, written by the control plane (not by a pod)."""
    return DeploymentLog(
        deployment_name=deployment_name,
        timestamp=utcnow(),
        stream=stream,
        message=message,
        pod_id=None,
        type="deployment",
    )


def add_deployment_log(db: Database, deployment_name: str, message: str, stream: str = "stdout") -> None:
    with db.session() as session:
        session.add(deployment_log_line(deployment_name, message, stream))


def _log_rows(execution_id: str, records: Iterable[tuple[datetime, str, str]]) -> list[dict[str, Any]]:
    return [
        {"execution_id": execution_id, "timestamp": ts, "stream": stream, "message": message}
        for ts, stream, message in records
    ]


def append_logs(db: Database, execution_id: str, records: Iterable[tuple[datetime, str, str]]) -> None:
    rows = _log_rows(execution_id, records)
    if rows:
        with db.session() as session:
            session.execute(insert(ExecutionLog), rows)


def save_files(session: Session, execution_id: str, direction: str, files: dict[str, Any]) -> None:
    """Keep the ``FileValue`` among ``files`` (by input or output name) with the execution."""
    for name, value in files.items():
        if isinstance(value, FileValue):
            session.merge(
                ExecutionFile(
                    execution_id=execution_id, direction=direction, name=name, filename=value.filename, data=value.data
                )
            )


def delete_files_ended_before(db: Database, cutoff: datetime) -> int:
    """Drop the kept files of executions that ended before ``cutoff`` (their records stay)."""
    ended = select(Execution.execution_id).where(Execution.end_date < cutoff)
    with db.session() as session:
        return rowcount(session.execute(delete(ExecutionFile).where(ExecutionFile.execution_id.in_(ended)))) or 0


def load_file(db: Database, execution_id: str, direction: str, name: str) -> FileValue | None:
    with db.session() as session:
        row = session.get(ExecutionFile, (execution_id, direction, name))
        return FileValue(row.filename, row.data) if row else None


def get(session: Session, execution_id: str) -> Execution | None:
    return session.get(Execution, execution_id)


def status_of(db: Database, execution_id: str) -> str | None:
    with db.session() as session:
        return session.scalar(select(Execution.status).where(Execution.execution_id == execution_id))


def end_unfinished_executions(db: Database, reason: str, without_pod: bool = False) -> int:
    """End as Error every execution still Pending or Running (none can be, on a new cluster);
    ``without_pod``: only those no warm pod runs (elastic executions and pipeline runs)."""
    where = [Execution.status.in_(UNFINISHED_STATUSES)]
    if without_pod:
        where.append(Execution.pod_id.is_(None))
    with db.session() as session:
        done = session.execute(update(Execution).where(*where).values(status=ERROR, end_date=utcnow(), error=reason))
        return rowcount(done)


MAX_LOG_LIMIT = 10_000


def log_window(
    db: Database, model: Any, owner: Any, from_ts: datetime | None, to_ts: datetime | None, limit: int | None
) -> list[Any]:
    """Log rows of one owner (``owner`` is a where-clause), oldest first, within the bounds."""
    if limit is not None and (limit <= 0 or limit > MAX_LOG_LIMIT):
        raise InvalidInput(f"limit must be between 1 and {MAX_LOG_LIMIT}.")
    query = select(model).where(owner)
    if from_ts is not None:
        query = query.where(model.timestamp >= from_ts)
    if to_ts is not None:
        query = query.where(model.timestamp <= to_ts)
    with db.session() as session:
        return list(session.scalars(query.order_by(model.timestamp, model.id).limit(limit or MAX_LOG_LIMIT)))


def log_tail(
    db: Database,
    model: Any,
    owner: Any,
    after_id: int | None = None,
    limit: int = 500,
    skip: Collection[int] = (),
) -> list[Any]:
    """Log rows of one owner in the order of their ids: those after ``after_id`` but the ids
    in ``skip`` (a live tail's cursor, and what it sent already), or else the last ``limit``.
    Oldest first either way.

    A row id is taken at INSERT, not at COMMIT: on PostgreSQL a row with a lower id can become
    visible after one with a higher id (another writer's transaction, committed later), so a
    tail must read a little behind its cursor and skip what it sent (``rayline.console.live``).
    SQLite has one writer at a time: its ids are visible in order."""
    query = select(model).where(owner)
    with db.session() as session:
        if after_id is not None:
            query = query.where(model.id > after_id)
            if skip:
                query = query.where(model.id.not_in(list(skip)))
            return list(session.scalars(query.order_by(model.id).limit(limit)))
        return list(reversed(list(session.scalars(query.order_by(model.id.desc()).limit(limit)))))


def executions_page(
    db: Database,
    where: Any,
    status: str | None = None,
    offset: int = 0,
    limit: int | None = 50,
    count: bool = True,
) -> tuple[list[Execution], int]:
    """One page of executions (newest first) and how many there are in all, ``where`` (a
    where-clause: a pipeline's, a deployment's) and of ``status`` when given. ``limit`` None:
    all of them; ``count`` False: they are not counted (the number is then -1)."""
    clauses = [where] if status is None else [where, Execution.status == status]
    with db.session() as session:
        total = (session.scalar(select(func.count()).select_from(Execution).where(*clauses)) or 0) if count else -1
        query = select(Execution).where(*clauses).order_by(Execution.created_at.desc()).offset(offset or None)
        rows = session.scalars(query.limit(limit) if limit is not None else query)
        return list(rows), total
