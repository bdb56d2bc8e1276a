"""Resource samples in SQL (``resource_samples``): one row per Ray node per sampling round, at
the time that node was read.

A window's points are made here, in one query, rather than from every row read into Python (a
31-day window of a few nodes sampled every 15 s is hundreds of thousands of rows): each sample's
percentages, each pair of consecutive samples' network rates (window functions), and, for a node
with more samples in the window than a series may have points, their mean over each step of the
window (``GROUP BY`` node and ``(epoch - start) / step``). Written for SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Double, Integer, and_, case, cast, delete, extract, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from rayline.domain.resource_metrics import GAUGES, GPU_GAUGES, METRICS, Bucket, LastSample, NodeSample
from rayline.store.db import Database, rowcount
from rayline.store.models import ResourceSample

S = ResourceSample


def add(db: Database, sampled_at: datetime, samples: list[NodeSample]) -> None:
    """One sampling round: every node's sample, at the time it was read (``sampled_at``, the
    round's time, for a sample that does not say)."""
    if samples:
        with db.session() as session:
            session.add_all(
                ResourceSample(**{**asdict(sample), "sampled_at": sample.sampled_at or sampled_at})
                for sample in samples
            )


def delete_before(db: Database, cutoff: datetime) -> int:
    """Forget the samples older than ``cutoff``; returns how many went."""
    with db.session() as session:
        return rowcount(session.execute(delete(ResourceSample).where(ResourceSample.sampled_at < cutoff)))


def _epoch(db: Database, moment: Any) -> ColumnElement[Any]:
    """Seconds since the epoch of a stored (naive UTC) time, to the millisecond."""
    if db.engine.dialect.name == "sqlite":
        # SQLite keeps the time as text. julianday() would do, but its float is off by some
        # microseconds, enough to put a sample at a step's very start in the step before:
        # '%s' is the whole seconds, exact, and '%f' - '%S' their milliseconds.
        return (
            cast(func.strftime("%s", moment), Integer)
            + cast(func.strftime("%f", moment), Double)
            - cast(func.strftime("%S", moment), Integer)
        )
    return cast(extract("epoch", moment), Double)


def _whole(db: Database, value: ColumnElement[Any]) -> ColumnElement[int]:
    """The whole part of a number of at least 0 (PostgreSQL's CAST rounds; SQLite's truncates,
    and it has floor() only when built with its math functions)."""
    if db.engine.dialect.name == "sqlite":
        return cast(value, Integer)
    return cast(func.floor(value), Integer)


def _percent(used: Any, total: Any) -> ColumnElement[float]:
    """From 0 to 100; NULL where the total is unknown (0, or NULL on a node without GPUs)."""
    share = 100.0 * cast(used, Double) / cast(total, Double)
    return case((total > 0, case((share > 100.0, 100.0), (share < 0.0, 0.0), else_=share)))


def buckets(
    db: Database, start: datetime, end: datetime, step_s: float, max_points: int, max_gap_s: float
) -> list[Bucket]:
    """The points of the window from ``start`` to ``end`` (both included), node by node in the
    order they first appear in it: each of a node's samples, or, for a node with more than
    ``max_points`` samples, the means over each ``step_s`` of the window. A network rate is made
    from two consecutive samples of the node in the window no more than ``max_gap_s`` apart,
    none across a counter that went back (the node restarted)."""
    in_window = and_(S.sampled_at >= start, S.sampled_at <= end)
    # Each sample's values (percentages held to 0-100), and its time in seconds since the epoch.
    sample = (
        select(
            S.id,
            S.node_id,
            S.node_ip,
            S.is_head,
            S.sampled_at,
            _epoch(db, S.sampled_at).label("t"),
            case((S.cpu_percent > 100.0, 100.0), (S.cpu_percent < 0.0, 0.0), else_=S.cpu_percent).label("cpu_usage"),
            _percent(S.disk_used_bytes, S.disk_total_bytes).label("disk_usage"),
            _percent(S.ram_used_bytes, S.ram_total_bytes).label("ram_usage"),
            _percent(S.vram_used_bytes, S.vram_total_bytes).label("vram_usage"),
            case((S.gpu_percent > 100.0, 100.0), (S.gpu_percent < 0.0, 0.0), else_=S.gpu_percent).label("gpu_usage"),
            S.network_received_bytes.label("received"),
            S.network_sent_bytes.label("sent"),
        )
        .where(in_window)
        .subquery("sample")
    )
    # With the node's sample before it (for the rates), how many the node has in the window, and
    # what its last one says of it (its label).
    node, in_order = sample.c.node_id, (sample.c.sampled_at, sample.c.id)
    newest_first = (sample.c.sampled_at.desc(), sample.c.id.desc())
    paired = select(
        sample,
        func.lag(sample.c.t).over(partition_by=node, order_by=in_order).label("before_t"),
        func.lag(sample.c.received).over(partition_by=node, order_by=in_order).label("before_received"),
        func.lag(sample.c.sent).over(partition_by=node, order_by=in_order).label("before_sent"),
        func.count().over(partition_by=node).label("count"),
        func.min(sample.c.id).over(partition_by=node).label("first_id"),
        func.first_value(sample.c.node_ip).over(partition_by=node, order_by=newest_first).label("last_ip"),
        func.first_value(sample.c.is_head).over(partition_by=node, order_by=newest_first).label("last_is_head"),
    ).subquery("paired")

    def rate(counter: str) -> ColumnElement[float]:
        seconds = paired.c.t - paired.c.before_t
        grown = paired.c[counter] - paired.c[f"before_{counter}"]
        return case(
            (and_(seconds > 0, seconds <= max_gap_s, grown >= 0), cast(grown, Double) / seconds),
        )

    step = _whole(db, (paired.c.t - literal(start.timestamp(), Double)) / literal(step_s, Double))
    keyed = select(
        paired.c.node_id,
        paired.c.first_id,
        paired.c.last_ip,
        paired.c.last_is_head,
        paired.c.sampled_at,
        # A node with few samples keeps each (its ids are distinct); the others, a step each (the
        # window's end in the last one). One node's keys are all of one kind.
        case(
            (paired.c["count"] <= max_points, paired.c.id),
            else_=case((step >= max_points, max_points - 1), (step < 0, 0), else_=step),
        ).label("key"),
        *(paired.c[name] for name in (*GAUGES, *GPU_GAUGES)),
        rate("received").label("network_input_usage"),
        rate("sent").label("network_output_usage"),
    ).subquery("keyed")
    query = (
        select(
            keyed.c.node_id,
            func.min(keyed.c.first_id).label("first_id"),
            func.min(keyed.c.last_ip).label("node_ip"),
            func.min(cast(keyed.c.last_is_head, Integer)).label("is_head"),
            *(
                column
                for name in METRICS
                for column in (
                    cast(func.avg(keyed.c[name]), Double).label(name),
                    func.max(case((keyed.c[name].is_not(None), keyed.c.sampled_at))).label(f"{name}_at"),
                )
            ),
        )
        .group_by(keyed.c.node_id, keyed.c.key)
        .order_by("first_id", keyed.c.node_id)
    )
    with db.session() as session:
        rows = session.execute(query).all()
    return [
        Bucket(
            node_id=row.node_id,
            node_ip=row.node_ip,
            is_head=bool(row.is_head),
            values={
                name: (getattr(row, f"{name}_at"), float(getattr(row, name)))
                for name in METRICS
                if getattr(row, name) is not None
            },
        )
        for row in rows
    ]


def last_samples(db: Database, start: datetime, end: datetime) -> list[LastSample]:
    """Each node's last sample from ``start`` to ``end``: only what the totals need."""
    in_window = and_(S.sampled_at >= start, S.sampled_at <= end)
    latest = select(S.node_id, func.max(S.sampled_at).label("at")).where(in_window).group_by(S.node_id).subquery()
    query = (
        select(S.node_id, S.sampled_at, S.ram_total_bytes, S.disk_total_bytes, S.vram_total_bytes)
        .join(latest, and_(S.node_id == latest.c.node_id, S.sampled_at == latest.c.at))
        .order_by(S.id)
    )
    with db.session() as session:
        found = {row.node_id: LastSample(*row) for row in session.execute(query)}  # the later of a tie
    return list(found.values())
