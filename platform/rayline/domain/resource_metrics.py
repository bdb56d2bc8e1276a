"""Resource metrics of the platform's Ray nodes, as craft-ai-sdk's ``get_resource_metrics`` reads
them: what a window's query may be, and how stored samples become its series (and its CSV).

The answer is ``{"additional_data": {"total_disk", "total_ram"[, "total_vram"]}, "metrics":
{"cpu_usage": [{"metric": {"worker": <node id>, ...}, "values": [[timestamp, value], ...]}],
...}}``: the shape of a Prometheus range query's result, which Craft's platform seems to pass
on (its documentation says no more), so timestamps are seconds since the epoch (with
milliseconds), as Prometheus gives them. CPU, RAM, disk, GPU and VRAM are percentages; the
network is in bytes per second, averaged between two samples.

Plain Python: the samples are taken by ``rayline.runtime.node_metrics`` and kept by
``rayline.store.resource_metrics``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from rayline.errors import InvalidInput

# The widest window one query may ask for, and the most points a series has (past it, each point
# is the mean of the samples of one step of the window): an answer stays a few MB at most.
MAX_WINDOW_S = 31 * 24 * 3600
MAX_POINTS_PER_SERIES = 1000
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last date Python can represent

CSV_COLUMNS = ("timestamp", "date", "worker", "metric", "value")


@dataclass(frozen=True)
class NodeSample:
    """What one Ray node used at one moment. The network numbers are the node's counters since
    its boot; the GPU ones are None on a node without GPUs."""

    node_id: str
    node_ip: str
    is_head: bool
    cpu_percent: float
    ram_used_bytes: int
    ram_total_bytes: int
    disk_used_bytes: int
    disk_total_bytes: int
    network_received_bytes: int
    network_sent_bytes: int
    gpu_percent: float | None = None
    vram_used_bytes: int | None = None
    vram_total_bytes: int | None = None


TimedSample = tuple[datetime, NodeSample]  # a sample and the time of its sampling round


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def _percent(used: int | None, total: int | None) -> float | None:
    if used is None or not total:
        return None
    return min(100.0, max(0.0, 100.0 * used / total))


# Each metric's value at one sample, in the answer's order; None where the node has no such value.
GAUGES: dict[str, Callable[[NodeSample], float | None]] = {
    "cpu_usage": lambda s: min(100.0, max(0.0, s.cpu_percent)),
    "disk_usage": lambda s: _percent(s.disk_used_bytes, s.disk_total_bytes),
    "ram_usage": lambda s: _percent(s.ram_used_bytes, s.ram_total_bytes),
}
GPU_GAUGES: dict[str, Callable[[NodeSample], float | None]] = {
    "vram_usage": lambda s: _percent(s.vram_used_bytes, s.vram_total_bytes),
    "gpu_usage": lambda s: None if s.gpu_percent is None else min(100.0, max(0.0, s.gpu_percent)),
}
# Counters, answered as rates: bytes per second between two samples of a node.
COUNTERS: dict[str, Callable[[NodeSample], int]] = {
    "network_input_usage": lambda s: s.network_received_bytes,
    "network_output_usage": lambda s: s.network_sent_bytes,
}


def _epoch_ms(field: str, value: str | None) -> datetime:
    example = "e.g. 1767225600000 for 2026-01-01T00:00:00Z"
    if value is None or not value.strip():
        raise InvalidInput(f"{field} is missing: give it in milliseconds since the epoch (UTC), {example}.")
    try:
        milliseconds = int(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{field} must be a whole number of milliseconds since the epoch (UTC), {example}; not {value[:40]!r}."
        ) from None
    if not 0 <= milliseconds <= MAX_EPOCH_MS:
        raise InvalidInput(f"{field} must be from 0 (1970-01-01) to {MAX_EPOCH_MS} (9999-12-31), in milliseconds.")
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)


def parse_window(start: str | None, end: str | None) -> Window:
    """The window of a query, from its ``start`` and ``end`` parameters (epoch milliseconds, as
    craft-ai-sdk sends them); ``InvalidInput`` naming the parameter and the fix."""
    window = Window(_epoch_ms("start", start), _epoch_ms("end", end))
    if window.end < window.start:
        raise InvalidInput(
            f"end ({window.end.isoformat()}) is before start ({window.start.isoformat()}): give an end at or "
            "after the start."
        )
    span_s = (window.end - window.start).total_seconds()
    if span_s > MAX_WINDOW_S:
        raise InvalidInput(
            f"The window from start to end spans {span_s / 86400:.1f} days; ask for at most "
            f"{MAX_WINDOW_S // 86400} days at a time (several queries for a longer period)."
        )
    return window


def parse_download(value: str | None) -> bool:
    """``download``: craft-ai-sdk sends Python's ``True`` or ``False``; any case, or 1 and 0."""
    if value is None or value.strip() == "":
        return False
    word = value.strip().lower()
    if word in ("true", "1"):
        return True
    if word in ("false", "0"):
        return False
    raise InvalidInput(f"download must be true (a CSV file) or false (JSON), not {value[:40]!r}.")


def _seconds(moment: datetime) -> float:
    return round(moment.timestamp(), 3)


def _downsampled(points: list[tuple[float, float]], start_s: float, step_s: float) -> list[tuple[float, float]]:
    """At most ``MAX_POINTS_PER_SERIES``: past it, each point is the mean of the points of one
    step, at the time of the step's last one."""
    if len(points) <= MAX_POINTS_PER_SERIES:
        return points
    buckets: dict[int, list[tuple[float, float]]] = {}
    for point in points:
        step = min(max(int((point[0] - start_s) // step_s), 0), MAX_POINTS_PER_SERIES - 1)
        buckets.setdefault(step, []).append(point)
    return [(bucket[-1][0], sum(value for _, value in bucket) / len(bucket)) for bucket in buckets.values()]


def _rates(samples: Sequence[TimedSample], counter: Callable[[NodeSample], int]) -> list[tuple[float, float]]:
    """Bytes per second between consecutive samples; none across a counter that went back (the
    node restarted), nor for a node's first sample."""
    rates = []
    for (before_at, before), (at, sample) in pairwise(samples):
        seconds, grown = (at - before_at).total_seconds(), counter(sample) - counter(before)
        if seconds > 0 and grown >= 0:
            rates.append((_seconds(at), grown / seconds))
    return rates


def report(samples: Sequence[TimedSample], window: Window) -> dict[str, Any]:
    """The answer to a query over ``window``: ``samples`` are those of the window, oldest first.

    A series per Ray node (``worker`` is its node id); VRAM and GPU series, and ``total_vram``,
    only when a node of the window has GPUs. The totals are those of the nodes of the window's
    last sampling round: the environment as it was at the window's end (0 for an empty window).
    """
    by_worker: dict[str, list[TimedSample]] = {}
    for timed in samples:
        by_worker.setdefault(timed[1].node_id, []).append(timed)
    has_gpu = any(sample.vram_total_bytes or sample.gpu_percent is not None for _, sample in samples)
    gauges = {**GAUGES, **(GPU_GAUGES if has_gpu else {})}
    metrics: dict[str, list[dict[str, Any]]] = {name: [] for name in (*gauges, *COUNTERS)}
    start_s = window.start.timestamp()
    step_s = max((window.end - window.start).total_seconds(), 1.0) / MAX_POINTS_PER_SERIES
    for worker, timed_samples in by_worker.items():
        last = timed_samples[-1][1]
        label = {"worker": worker, "node_ip": last.node_ip, "is_head": last.is_head}
        series = {
            name: [(_seconds(at), value) for at, sample in timed_samples if (value := gauge(sample)) is not None]
            for name, gauge in gauges.items()
        }
        series.update({name: _rates(timed_samples, counter) for name, counter in COUNTERS.items()})
        for name, points in series.items():
            if points:
                # Percentages to 0.01; rates in whole bytes per second.
                values = [
                    [at, round(value) if name in COUNTERS else round(value, 2)]
                    for at, value in _downsampled(points, start_s, step_s)
                ]
                metrics[name].append({"metric": label, "values": values})
    last_round = [sample for at, sample in samples if at == samples[-1][0]] if samples else []
    totals: dict[str, int] = {
        "total_disk": sum(s.disk_total_bytes for s in last_round),
        "total_ram": sum(s.ram_total_bytes for s in last_round),
    }
    if has_gpu:
        totals["total_vram"] = sum(s.vram_total_bytes or 0 for s in last_round)
    return {"additional_data": totals, "metrics": metrics}


def to_csv(answer: dict[str, Any]) -> bytes:
    """The series of ``report``'s answer as CSV, one row per (timestamp, worker, metric), in time
    order: ``timestamp`` (seconds since the epoch), ``date`` (ISO 8601, UTC), ``worker`` (the Ray
    node id), ``metric`` (a key of ``metrics``), ``value`` (its unit). The totals are not in it."""
    rows = []
    for metric, series in answer["metrics"].items():
        for item in series:
            worker = item["metric"]["worker"]
            for at, value in item["values"]:
                rows.append((at, worker, metric, value))
    rows.sort(key=lambda row: (row[0], row[1], row[2]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for at, worker, metric, value in rows:
        date = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        writer.writerow((at, date, worker, metric, value))
    return out.getvalue().encode()
