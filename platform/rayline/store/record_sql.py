"""The record writer's events applied in SQL: the control plane's sink, and the replay of the
journals of pods that died when ``rayline up`` starts (``rayline.store.record_writer``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from rayline.store import executions as store
from rayline.store.db import Database
from rayline.store.models import DeploymentLog, Execution, ExecutionLog
from rayline.store.record_writer import Event, Sink, replay_tree


def _decode_times(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {**row, **{k: datetime.fromisoformat(row[k]) for k in keys if isinstance(row.get(k), str)}}


_FINISH = (
    update(Execution)
    # Plain comparisons: an IN list cannot be part of a multi-row (executemany) statement.
    .where(
        Execution.execution_id == bindparam("b_execution_id"),
        or_(Execution.status == store.PENDING, Execution.status == store.RUNNING),
    )
    .values(
        status=bindparam("b_status"),
        end_date=bindparam("b_end_date"),
        error=bindparam("b_error"),
        outputs=bindparam("b_outputs"),
    )
)


def apply_batch(session: Session, events: list[Event], replaying: bool = False) -> None:
    """Write events as a few multi-row statements: every start, then every log, then every end
    (an end always follows its start, so this keeps their meaning). Replaying a journal that may
    hold committed events skips the starts already written; ends only apply to unfinished rows."""
    by_kind: dict[str, list[Event]] = {}
    for event in events:
        by_kind.setdefault(event["kind"], []).append(event)
    starts = [_decode_times(e["row"], "created_at", "start_date") for e in by_kind.get("started", [])]
    if replaying and starts:
        known = set(
            session.scalars(
                select(Execution.execution_id).where(
                    Execution.execution_id.in_([row["execution_id"] for row in starts])
                )
            )
        )
        starts = [row for row in starts if row["execution_id"] not in known]
    if starts:
        session.execute(insert(Execution), starts)
    for kind, table in (("execution_log", ExecutionLog), ("deployment_log", DeploymentLog)):
        rows = [_decode_times(e["row"], "timestamp") for e in by_kind.get(kind, [])]
        if rows:
            session.execute(insert(table), rows)
    ends = [
        {
            "b_execution_id": e["execution_id"],
            "b_status": e["values"]["status"],
            "b_end_date": _decode_times(e["values"], "end_date")["end_date"],
            "b_error": e["values"].get("error"),
            "b_outputs": e["values"].get("outputs", []),
        }
        for e in by_kind.get("finished", [])
    ]
    if ends:
        session.connection().execute(_FINISH, ends)


def sql_sink(db: Database) -> Sink:
    """Events written straight to SQL (``kind == "files"`` events keep file values)."""

    def write(events: list[Event], replaying: bool = False) -> None:
        with db.session() as session:
            apply_batch(session, [e for e in events if e["kind"] != "files"], replaying=replaying)
            for event in events:
                if event["kind"] == "files":
                    store.save_files(session, event["execution_id"], event["direction"], event["files"])

    return write


def replay_all_orphans(db: Database, root: Path) -> None:
    """Every deployment's journals under ``root`` (``rayline up``: before it, nothing runs)."""
    replay_tree(sql_sink(db), root)
