"""The small chart of a deployment's recent executions: one bar per execution, oldest on the
left, its height the execution's duration and its colour its status. Drawn as inline SVG by the
template (``_chart.html``) from what ``recent_executions_chart`` computes here, so that the page
needs no script and no style attribute (the Content-Security-Policy forbids inline styles)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rayline.store.models import Execution, utcnow

WIDTH, HEIGHT = 150, 32  # the viewBox, in SVG units
MIN_BAR_HEIGHT = 2  # an execution of a few milliseconds stays visible


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    status: str  # a CSS class: succeeded, failed, error, running, pending
    title: str  # the tooltip: id, status, duration, date
    execution_id: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    width: int = WIDTH
    height: int = HEIGHT
    summary: str = ""  # the chart said in words, for screen readers


def duration_s(execution: Execution, now: datetime | None = None) -> float | None:
    """Seconds from its start to its end (to now while it runs); None before it starts."""
    if execution.start_date is None:
        return None
    end = execution.end_date or now or utcnow()
    return max(0.0, (end - execution.start_date).total_seconds())


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "not started"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def recent_executions_chart(newest_first: Sequence[Execution], slots: int = 30) -> Chart:
    """The chart of up to ``slots`` executions, given newest first (as the store reads them)."""
    now = utcnow()
    executions = list(reversed(newest_first[:slots]))
    durations = [duration_s(execution, now) or 0.0 for execution in executions]
    longest = max(durations, default=0.0) or 1.0
    slot = WIDTH / slots
    bars = []
    for index, (execution, seconds) in enumerate(zip(executions, durations, strict=True)):
        height = max(MIN_BAR_HEIGHT, round(seconds / longest * (HEIGHT - 1), 2))
        created = execution.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        bars.append(
            Bar(
                x=round(index * slot + slot * 0.15, 2),
                y=round(HEIGHT - height, 2),
                width=round(slot * 0.7, 2),
                height=height,
                status=execution.status.lower(),
                title=f"{execution.execution_id}: {execution.status}, "
                f"{human_duration(duration_s(execution, now))}, {created}",
                execution_id=execution.execution_id,
            )
        )
    counts: dict[str, int] = {}
    for execution in executions:
        counts[execution.status] = counts.get(execution.status, 0) + 1
    summary = (
        f"The last {len(executions)} executions: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        if executions
        else "No execution yet."
    )
    return Chart(bars, summary=summary)
