"""Pipeline metrics in SQL: single values (one row per execution and name, replaced) and list
values (one row per call that appended some, listed grouped by execution and name)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError

from rayline.store.db import Database
from rayline.store.models import ListMetricBatch, MetricValue, utcnow


def record_value(
    db: Database, execution_id: str, name: str, value: float, pipeline_name: str, deployment_name: str | None
) -> None:
    row = {"value": value, "pipeline_name": pipeline_name, "deployment_name": deployment_name}
    for attempt in range(2):
        try:
            with db.session() as session:
                session.merge(MetricValue(execution_id=execution_id, name=name, created_at=utcnow(), **row))
            return
        except IntegrityError:  # the same first value recorded at once by another thread: replace it
            if attempt:
                raise


def record_list_values(
    db: Database,
    execution_id: str,
    name: str,
    values: list[float],
    pipeline_name: str,
    deployment_name: str | None,
) -> None:
    with db.session() as session:
        session.add(
            ListMetricBatch(
                execution_id=execution_id,
                name=name,
                values=values,
                pipeline_name=pipeline_name,
                deployment_name=deployment_name,
                created_at=utcnow(),
            )
        )


def _where(table: Any, name: str | None, filters: dict[str, str]) -> list[Any]:
    conditions = [getattr(table, column) == value for column, value in filters.items()]
    if name is not None:
        conditions.append(table.name == name)
    return conditions


def _public(row: Any, created_at: datetime) -> dict[str, Any]:
    return {
        "name": row.name,
        "execution_id": row.execution_id,
        "deployment_name": row.deployment_name,
        "pipeline_name": row.pipeline_name,
        "created_at": created_at.isoformat(),
    }


def list_values(
    db: Database, name: str | None, filters: dict[str, str], offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of single-value metrics, by execution id and name, and how many there are."""
    where = _where(MetricValue, name, filters)
    with db.session() as session:
        total = session.scalar(select(func.count()).select_from(MetricValue).where(*where)) or 0
        rows = session.scalars(
            select(MetricValue)
            .where(*where)
            .order_by(MetricValue.execution_id, MetricValue.name)
            .offset(offset)
            .limit(limit)
        ).all()
    return [{**_public(row, row.created_at), "value": row.value} for row in rows], total


def list_lists(
    db: Database, name: str | None, filters: dict[str, str], offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of list metrics (one per execution and name, with its values in the order they
    were recorded), and how many there are."""
    table = ListMetricBatch
    where = _where(table, name, filters)
    # One list per (execution, name); min() keeps each column's type (created_at: aware UTC).
    groups = (
        select(
            table.execution_id,
            table.name,
            func.min(table.pipeline_name).label("pipeline_name"),
            func.min(table.deployment_name).label("deployment_name"),
            func.min(table.created_at).label("created_at"),
        )
        .where(*where)
        .group_by(table.execution_id, table.name)
    )
    with db.session() as session:
        total = session.scalar(select(func.count()).select_from(groups.subquery())) or 0
        page = session.execute(groups.order_by(table.execution_id, table.name).offset(offset).limit(limit)).all()
        values: dict[tuple[str, str], list[float]] = {(group.execution_id, group.name): [] for group in page}
        if values:  # the page's batches, in one query, in the order they were recorded
            batches = session.execute(
                select(table.execution_id, table.name, table.values)
                .where(tuple_(table.execution_id, table.name).in_(list(values)))
                .order_by(table.id)
            )
            for batch in batches:
                values[(batch.execution_id, batch.name)].extend(batch.values)
    return [
        {**_public(group, group.created_at), "values": values[(group.execution_id, group.name)]} for group in page
    ], total
