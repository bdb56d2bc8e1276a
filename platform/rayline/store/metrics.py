"""Pipeline metrics in SQL: single values (one row per execution and name, replaced) and list
values (one row per call that appended some, listed grouped by execution and name)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from rayline.store.db import Database
from rayline.store.models import ListMetricBatch, MetricValue, utcnow


def record_value(
    db: Database, execution_id: str, name: str, value: float, pipeline_name: str, deployment_name: str | None
) -> None:
    with db.session() as session:
        session.merge(
            MetricValue(
                execution_id=execution_id,
                name=name,
                value=value,
                pipeline_name=pipeline_name,
                deployment_name=deployment_name,
                created_at=utcnow(),
            )
        )


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
    """A page of single-value metrics, oldest execution first, and how many there are."""
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
    groups = (
        select(
            table.execution_id,
            table.name,
            table.pipeline_name,
            table.deployment_name,
            func.min(table.created_at).label("created_at"),  # min() keeps the column's type: aware UTC
        )
        .where(*where)
        .group_by(table.execution_id, table.name, table.pipeline_name, table.deployment_name)
    )
    with db.session() as session:
        total = session.scalar(select(func.count()).select_from(groups.subquery())) or 0
        page = session.execute(groups.order_by(table.execution_id, table.name).offset(offset).limit(limit)).all()
        metrics = []
        for group in page:
            batches = session.scalars(
                select(table.values)
                .where(table.execution_id == group.execution_id, table.name == group.name)
                .order_by(table.id)
            ).all()
            values = [value for batch in batches for value in batch]
            metrics.append({**_public(group, group.created_at), "values": values})
    return metrics, total
