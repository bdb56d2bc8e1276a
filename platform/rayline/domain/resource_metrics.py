"""Resource metrics of the platform's Ray nodes, as craft-ai-sdk's ``get_resource_metrics`` reads
them: what a window's query may be, and how stored samples become its series (and its CSV).

The answer is ``{"additional_data": {"total_disk", "total_ram"[, "total_vram"]}, "metrics":
{"cpu_usage": [{"metric": {"worker": <node id>, ...}, "values": [[timestamp, value], ...]}],
...}}``: the shape of a Prometheus range query's result, which Craft's platform seems to pass
on (its documentation says no more), so timestamps are seconds since the epoch (with
milliseconds), as Prometheus gives them. CPU, RAM, disk, GPU and VRAM are percentages; the
network is in bytes per second, averaged between two samples.

Plain Python: the samples are taken by ``rayline.runtime.node_metrics`` and kept by
``rayline.store.resource_metrics``, which also makes the points of a window (each sample's
percentages and rates, and the means of a step of a wide window) in SQL, so that a wide window
is not read into Python row by row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rayline.errors import InvalidInput

# The widest window one query may ask for, and the most points a series has (past it, each point
# is the mean of the samples of one step of the window): an answer stays a few MB at most.
MAX_WINDOW_S = 31 * 24 * 3600
MAX_POINTS_PER_SERIES = 1000
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last date Python can represent
# Two samples of a node further apart than this many sampling intervals make no network rate (a
# control plane away for an hour must not answer an hour's mean as the rate at its return), and
# a node not sampled for that long before the window's last sample is out of the totals.
MAX_GAP_INTERVALS = 3

CSV_COLUMNS = ("timestamp", "date", "worker", "metric", "value")

# The series of the answer, in its order: percentages, those of GPUs (only when a node of the
# window has GPUs), and the network's bytes per second, made from two samples of a node.
GAUGES = ("cpu_usage", "disk_usage", "ram_usage")
GPU_GAUGES = ("vram_usage", "gpu_usage")
RATES = ("network_input_usage", "network_output_usage")
METRICS = (*GAUGES, *GPU_GAUGES, *RATES)


@dataclass(frozen=True)
class NodeSample:
    """What one Ray node used at one moment. The network numbers are the node's counters since
    its boot; the GPU ones are None on a node without GPUs. A disk of 0 bytes is one whose size
    the node does not report (Ray's dummy disk in a Kubernetes pod): it has no disk series and
    adds nothing to ``total_disk``. ``sampled_at``: when the node was read (None: when the
    sampling round is recorded)."""

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
    sampled_at: datetime | None = None


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def step_s(self) -> float:
        """The step of the window's points once a node has more samples than a series may have."""
        return max((self.end - self.start).total_seconds(), 1.0) / MAX_POINTS_PER_SERIES


@dataclass(frozen=True)
class Bucket:
    """One point of each of a node's series over one step of a window: the mean of the values of
    the node's samples in the step, at the time of the step's last sample having one (or one
    sample's, when the node has no more samples in the window than a series may have points).
    A metric without a value in the step is absent."""

    node_id: str
    node_ip: str  # node_ip and is_head: as of the node's last sample of the window
    is_head: bool
    values: dict[str, tuple[datetime, float]]


@dataclass(frozen=True)
class LastSample:
    """A node's last sample of a window: its part of the totals."""

    node_id: str
    sampled_at: datetime
    ram_total_bytes: int
    disk_total_bytes: int
    vram_total_bytes: int | None


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


def report(buckets: Sequence[Bucket], last: Sequence[LastSample], max_gap_s: float) -> dict[str, Any]:
    """The answer to a query over a window: ``buckets`` are its points, node by node (in the
    order the nodes first appear in the window), ``last`` each node's last sample of it.

    A series per Ray node (``worker`` is its node id); VRAM and GPU series, and ``total_vram``,
    only when a node of the window has GPUs. The totals are those of the nodes sampled in the
    ``max_gap_s`` before the window's last sample: the environment as it was at the window's end
    (a node that missed a round or two still in it; 0 for an empty window).
    """
    series: dict[str, dict[str, list[tuple[float, float]]]] = {}
    labels: dict[str, dict[str, Any]] = {}
    for bucket in buckets:
        labels[bucket.node_id] = {"worker": bucket.node_id, "node_ip": bucket.node_ip, "is_head": bucket.is_head}
        of_node = series.setdefault(bucket.node_id, {})
        for name, (at, value) in bucket.values.items():
            of_node.setdefault(name, []).append((_seconds(at), value))
    has_gpu = any(name in GPU_GAUGES for of_node in series.values() for name in of_node) or any(
        sample.vram_total_bytes for sample in last
    )
    names = [name for name in METRICS if has_gpu or name not in GPU_GAUGES]
    metrics: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for worker, of_node in series.items():
        for name in names:
            if points := sorted(of_node.get(name, [])):
                # Percentages to 0.01; rates in whole bytes per second.
                values = [[at, round(value) if name in RATES else round(value, 2)] for at, value in points]
                metrics[name].append({"metric": labels[worker], "values": values})
    latest = max((sample.sampled_at for sample in last), default=None)
    present = [s for s in last if latest is not None and (latest - s.sampled_at).total_seconds() <= max_gap_s]
    totals: dict[str, int] = {
        "total_disk": sum(s.disk_total_bytes for s in present),
        "total_ram": sum(s.ram_total_bytes for s in present),
    }
    if has_gpu:
        totals["total_vram"] = sum(s.vram_total_bytes or 0 for s in present)
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
