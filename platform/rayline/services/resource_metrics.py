"""Resource metrics: the control plane samples every Ray node every
RAYLINE_RESOURCE_METRICS_INTERVAL_S, keeps the samples in SQL for
RAYLINE_RESOURCE_METRICS_RETENTION_S (older ones go as new ones come), and answers a window's
series (``rayline.domain.resource_metrics``).

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

from rayline.domain.resource_metrics import NodeSample, Window, report
from rayline.store import resource_metrics as store
from rayline.store.db import Database
from rayline.store.models import utcnow

logger = logging.getLogger(__name__)


class ResourceMetricsService:
    def __init__(self, db: Database, retention_s: float, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._retention = timedelta(seconds=retention_s)
        self._clock = clock

    def record(self, samples: Sequence[NodeSample]) -> int:
        """Keep one sampling round (every node's sample, at the time now), and forget the samples
        past the retention. Returns how many were forgotten."""
        now = self._clock()
        store.add(self._db, now, list(samples))
        return store.delete_before(self._db, now - self._retention)

    def report(self, window: Window) -> dict[str, Any]:
        """The window's series and totals, in craft-ai-sdk's shape."""
        return report(store.between(self._db, window.start, window.end), window)


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
