"""What each Ray node uses, read from the node's own metrics agent: no agent of ours.

Every Ray node runs a metrics agent (a process of its dashboard agent) that exports, in the
Prometheus text format on the node's ``MetricsExportPort`` (``ray.nodes()`` lists it), what the
node's reporter measures every 2.5 s with psutil (and NVML or AMD SMI for GPUs): the
``ray_node_*`` gauges. The Ray dashboard's node view shows the same numbers, but only where the
dashboard runs (``ray start --include-dashboard=false`` leaves it out), while every node has its
metrics agent. Names and units are those of Ray 2.60 (``ray/dashboard/modules/reporter/
reporter_agent.py``); tests/unit/ray_metrics holds real text captured from a head and a worker.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from rayline.domain.resource_metrics import NodeSample
from rayline.runtime import cluster_state
from rayline.runtime.cluster_state import HEAD_RESOURCE

logger = logging.getLogger(__name__)

PREFIX = "ray_node_"
# Ray records GPU memory in MiB (its GPU providers divide NVML's bytes by 1024**2), though the
# gauges' description says bytes.
GRAM_UNIT_BYTES = 1024**2
# A node's read ends once it has taken this long (each connect or read waits as long at most,
# so a read stops within twice this) or past this many bytes: an agent's text is some tens of kB
# (a few hundred bytes a line, a few lines per worker process), and a node that hangs or sends
# without end must not hold up the round nor fill the control plane's memory.
SCRAPE_TIMEOUT_S = 3.0
MAX_SCRAPE_BYTES = 4 * 1024**2
MAX_PARALLEL_SCRAPES = 16
# Ray's dummy disk in a Kubernetes pod without RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE=1: total 1 B.
UNKNOWN_DISK_MAX_BYTES = 1

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Series:
    name: str
    labels: dict[str, str]
    value: float


def parse_prometheus(text: str, prefix: str = PREFIX) -> Iterator[Series]:
    """The samples of the Prometheus text format whose metric name starts with ``prefix``
    (comments and the other metrics are passed over, as is a line that does not parse)."""
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        match = _SAMPLE.match(line.strip())
        if match is None:
            continue
        try:
            value = float(match["value"])  # also "NaN", "+Inf"
        except ValueError:
            continue
        labels = {
            key: re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m[0]], raw)
            for key, raw in _LABEL.findall(match["labels"] or "")
        }
        yield Series(match["name"], labels, value)


def node_sample(node_id: str, node_ip: str, is_head: bool, text: str) -> NodeSample | None:
    """One node's sample from its agent's text; None while the agent does not export the node's
    numbers yet (its reporter's first round, a few seconds after the node starts)."""
    node: dict[str, float] = {}
    gpus: dict[str, dict[str, float]] = {}  # by GpuIndex
    for series in parse_prometheus(text):
        if not math.isfinite(series.value):
            continue
        name = series.name.removeprefix(PREFIX)
        if "GpuIndex" in series.labels:
            gpus.setdefault(series.labels["GpuIndex"], {})[name] = series.value
        else:
            node.setdefault(name, series.value)  # one node per agent: one series of each
    needed = ("cpu_utilization", "mem_used", "mem_total", "disk_usage", "disk_free", "network_received", "network_sent")
    if any(name not in node for name in needed):
        return None
    disk_used, disk_total = int(node["disk_usage"]), int(node["disk_usage"] + node["disk_free"])
    if disk_total <= UNKNOWN_DISK_MAX_BYTES:
        # Ray's placeholder where it does not measure the disk (a Kubernetes pod without
        # RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE=1): unknown, not a full or empty disk of 1 byte.
        disk_used, disk_total = 0, 0
    utilizations = [gpu["gpus_utilization"] for gpu in gpus.values() if "gpus_utilization" in gpu]
    gram_used = sum(gpu.get("gram_used", 0.0) for gpu in gpus.values())
    gram_total = gram_used + sum(gpu.get("gram_available", 0.0) for gpu in gpus.values())
    return NodeSample(
        node_id=node_id,
        node_ip=node_ip,
        is_head=is_head,
        cpu_percent=node["cpu_utilization"],
        ram_used_bytes=int(node["mem_used"]),
        ram_total_bytes=int(node["mem_total"]),
        disk_used_bytes=disk_used,
        # As Ray's own disk_utilization_percentage: used / (used + free), the root's reserved blocks aside.
        disk_total_bytes=disk_total,
        network_received_bytes=int(node["network_received"]),
        network_sent_bytes=int(node["network_sent"]),
        gpu_percent=sum(utilizations) / len(utilizations) if utilizations else None,
        vram_used_bytes=int(gram_used * GRAM_UNIT_BYTES) if gpus else None,
        vram_total_bytes=int(gram_total * GRAM_UNIT_BYTES) if gpus else None,
    )


class ScrapeRefused(Exception):
    """A node's agent answered past the limits of a read (``MAX_SCRAPE_BYTES``, the deadline)."""


class RayNodeMetrics:
    """Called once per sampling round (on the control plane, where Ray is initialized): a sample
    of every live node whose agent answers, each at the time it was read. A node that does not
    (or whose read fails in any way) is left out of the round and named in a warning, once until
    it answers again or leaves the cluster."""

    def __init__(self, timeout_s: float = SCRAPE_TIMEOUT_S, max_bytes: int = MAX_SCRAPE_BYTES) -> None:
        # For the process's life, shared by the rounds' threads. trust_env=False: the nodes'
        # addresses are the cluster's own, never to be sent through an HTTP(S)_PROXY of the
        # environment (nor read with its .netrc credentials).
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)
        self._timeout_s, self._max_bytes = timeout_s, max_bytes
        self._silent: set[str] = set()  # the nodes already warned about

    def __call__(self) -> list[NodeSample]:
        nodes = cluster_state.live_nodes()
        # A node gone from the cluster is forgotten: warned about again if it ever comes back.
        self._silent &= {node.get("NodeID") for node in nodes}
        if not nodes:
            return []
        with ThreadPoolExecutor(min(len(nodes), MAX_PARALLEL_SCRAPES), thread_name_prefix="rayline-scrape") as pool:
            found = list(pool.map(self._sample, nodes))
        return [sample for sample in found if sample is not None]

    def _read(self, url: str) -> str:
        deadline = time.monotonic() + self._timeout_s
        chunks, size = [], 0
        with self._client.stream("GET", url) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    raise ScrapeRefused(f"it answered more than {self._max_bytes // 1024} KiB")
                if time.monotonic() > deadline:
                    raise ScrapeRefused(f"its answer took more than {self._timeout_s:g} s")
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def _sample(self, node: dict[str, Any]) -> NodeSample | None:
        # Anything that goes wrong with one node (an answer that does not parse, an entry of
        # ray.nodes() without a field) leaves that node out, never the whole round.
        node_id = str(node.get("NodeID"))
        problem, details = None, False
        sample = None
        address, port = node.get("NodeManagerAddress"), node.get("MetricsExportPort")
        url = f"http://{f'[{address}]' if ':' in str(address) else address}:{port}/metrics"  # IPv6 in brackets
        if not address or not port:
            problem = "Ray lists no metrics export port for it"
        else:
            try:
                text = self._read(url)
                read_at = datetime.now(UTC)
                sample = node_sample(node_id, address, HEAD_RESOURCE in (node.get("Resources") or {}), text)
                if sample is None:
                    problem = f"its metrics agent ({url}) exports no ray_node_* numbers yet"
                else:
                    sample = replace(sample, sampled_at=read_at)
            except httpx.HTTPError as error:
                problem = f"its metrics agent did not answer at {url} ({error or type(error).__name__})"
            except ScrapeRefused as error:
                problem = f"its metrics agent's answer at {url} was cut off: {error}"
            except Exception as error:
                problem, details = f"reading its metrics agent at {url} failed ({error!r})", True
        if problem is None:
            self._silent.discard(node_id)
        elif node_id not in self._silent:
            self._silent.add(node_id)
            logger.warning("resource metrics: Ray node %s is left out: %s", node_id, problem, exc_info=details)
        return sample
