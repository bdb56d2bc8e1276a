"""Resource samples in SQL (``resource_samples``): one row per Ray node per sampling round."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime

from sqlalchemy import delete, select

from rayline.domain.resource_metrics import NodeSample, TimedSample
from rayline.store.db import Database, rowcount
from rayline.store.models import ResourceSample

_FIELDS = [field.name for field in fields(NodeSample)]


def add(db: Database, sampled_at: datetime, samples: list[NodeSample]) -> None:
    """One sampling round: every node's sample, at the round's time."""
    if samples:
        with db.session() as session:
            session.add_all(ResourceSample(sampled_at=sampled_at, **asdict(sample)) for sample in samples)


def delete_before(db: Database, cutoff: datetime) -> int:
    """Forget the samples older than ``cutoff``; returns how many went."""
    with db.session() as session:
        return rowcount(session.execute(delete(ResourceSample).where(ResourceSample.sampled_at < cutoff)))


def between(db: Database, start: datetime, end: datetime) -> list[TimedSample]:
    """The samples from ``start`` to ``end`` (both included), oldest first."""
    query = (
        select(ResourceSample)
        .where(ResourceSample.sampled_at >= start, ResourceSample.sampled_at <= end)
        .order_by(ResourceSample.sampled_at, ResourceSample.id)
    )
    with db.session() as session:
        return [
            (row.sampled_at, NodeSample(**{name: getattr(row, name) for name in _FIELDS}))
            for row in session.scalars(query)
        ]
