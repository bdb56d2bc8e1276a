"""Resource metrics: the control plane samples every Ray node every
RAYLINE_RESOURCE_METRICS_INTERVAL_S, keeps the samples in SQL for
RAYLINE_RESOURCE_METRICS_RETENTION_S (older ones go as new ones come), and answers a window's
series (``rayline.domain.resource_metrics``; the points are made in SQL,
``rayline.store.resource_metrics``).

Plain Python: the samples come from what it is handed (``rayline.runtime.node_metrics`` on the
control plane; anything in tests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from rayline.config import Settings
from rayline.domain.resource_metrics import MAX_GAP_INTERVALS, MAX_POINTS_PER_SERIES, NodeSample, Window, report
from rayline.store import resource_metrics as store
from rayline.store.db import Database
from rayline.store.models import utcnow

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S: float = Settings.model_fields["resource_metrics_interval_s"].default


class ResourceMetricsService:
    """``interval_s``: RAYLINE_RESOURCE_METRICS_INTERVAL_S, how often the samples are taken
    (``MAX_GAP_INTERVALS`` of it: the longest a node may go unsampled and its network rate and
    its part of the totals still hold)."""

    def __init__(
        self,
        db: Database,
        retention_s: float,
        clock: Callable[[], datetime] = utcnow,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self._db = db
        self._retention = timedelta(seconds=retention_s)
        self._clock = clock
        self._max_gap_s = MAX_GAP_INTERVALS * interval_s

    def record(self, samples: Sequence[NodeSample]) -> int:
        """Keep one sampling round (every node's sample, at the time it was read, or now when it
        does not say), and forget the samples past the retention. Returns how many were forgotten."""
        now = self._clock()
        store.add(self._db, now, list(samples))
        return store.delete_before(self._db, now - self._retention)

    def report(self, window: Window) -> dict[str, Any]:
        """The window's series and totals, in craft-ai-sdk's shape."""
        # Nothing older than the retention is kept: a window reaching further back is read from
        # there (and its points' step is that of what can be there).
        start = max(window.start, self._clock() - self._retention)
        if start > window.end:
            return report([], [], self._max_gap_s)
        kept = Window(start, window.end)
        buckets = store.buckets(self._db, kept.start, kept.end, kept.step_s, MAX_POINTS_PER_SERIES, self._max_gap_s)
        # A round recorded between the two reads is in the totals only: they are the environment
        # as of the later read.
        return report(buckets, store.last_samples(self._db, kept.start, kept.end), self._max_gap_s)


class ResourceSampler:
    """The control plane's sampling loop (``run`` on a thread of its own): a round at once, then
    one every ``interval_s``. A failing round (Ray's GCS or the database briefly away) is logged,
    and the next one tries again."""

    def __init__(
        self, service: ResourceMetricsService, sample: Callable[[], list[NodeSample]], interval_s: float
    ) -> None:
        self._service, self._sample, self._interval_s = service, sample, interval_s

    def round(self) -> int:
        """One round; returns how many nodes were sampled."""
        samples = self._sample()
        self._service.record(samples)
        return len(samples)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            began = time.monotonic()
            try:
                self.round()
            except Exception:
                logger.warning("could not sample the resource metrics of Ray's nodes", exc_info=True)
            stop.wait(max(0.0, self._interval_s - (time.monotonic() - began)))
