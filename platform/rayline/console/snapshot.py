"""The deployments' statuses as the live tails tell them: one look (``list_observed``: the rows
and, when a low-latency one is enabled, one ``serve.status()`` of the Serve controller) shared by
every open stream and kept ``MAX_AGE_S``, so that the controller is asked at most once in that
time however many pages follow a deployment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

MAX_AGE_S = 2.0


class StatusSnapshot:
    def __init__(
        self,
        observe: Callable[[], Sequence[Any]],
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._observe = observe  # -> the deployments' rows, each with .name and .status
        self._max_age_s = max_age_s
        self._clock = clock
        self._statuses: dict[str, str] = {}
        self._taken_at: float | None = None
        self._lock = threading.Lock()  # one look at a time: the streams that ask meanwhile wait for it

    def status_of(self, name: str) -> str | None:
        """The deployment's status at most ``max_age_s`` old; None when it does not exist (a
        name the snapshot lacks is looked for again at once: a deployment created since)."""
        with self._lock:
            taken = self._taken_at is None or self._clock() - self._taken_at >= self._max_age_s
            if taken:
                self._take()
            if name not in self._statuses and not taken:
                self._take()
            return self._statuses.get(name)

    def _take(self) -> None:
        self._statuses = {row.name: str(row.status) for row in self._observe()}
        self._taken_at = self._clock()
