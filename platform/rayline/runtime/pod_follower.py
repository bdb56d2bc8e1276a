"""What a warm pod follows of its deployment, and what it reports back, through the control plane.

The pod holds no database access: it asks the control plane (``pod_sync``, a long poll answered
at once when the control plane changes something, else after ``FOLLOW_HOLD_S``), so a rotated
token takes effect without a restart, and a disabled or deleted deployment is refused at once.
What it applies it reports in its pod row (``update_pod``), which the control plane waits for;
its load (running, waiting) is reported when it changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from rayline.domain.environment import apply as apply_environment
from rayline.domain.statuses import PodStatus
from rayline.runtime.control_plane_link import ControlPlaneLink

logger = logging.getLogger(__name__)

FOLLOW_HOLD_S = 10.0  # an idle pod asks the control plane about its deployment once per hold
# How often running/waiting counts are reported, when they changed (for get_deployment's pods;
# Serve's autoscaler has its own metrics). Each report is a Serve call from a busy pod.
LOAD_REPORT_S = 0.5


class PodFollower:
    def __init__(self, link: ControlPlaneLink, deployment_name: str, pod_id: str, flush: Callable[[], bool]) -> None:
        self._link = link
        self._flush = flush  # commits what the pod answered (its record writer's flush)
        self._flushed = 0  # the last flush the control plane asked for, done
        self._deployment_name = deployment_name
        self._pod_id = pod_id
        self.token_hash: str | None = None
        self.refusing: str | None = None  # "disabled" or "deleted" once the pod sees it
        self._unreported: dict[str, Any] = {}  # applied, not yet in the pod row (a report failed)
        # The environment variables as last loaded (version, values), and as set in os.environ.
        self._environment: tuple[int, dict[str, str]] = (0, {})
        self._applied_environment: tuple[int, dict[str, str]] = (0, {})
        self._applying = threading.Lock()
        self._stop = threading.Event()

    def update_pod(self, **fields: Any) -> None:
        self._link.call("update_pod", self._deployment_name, self._pod_id, fields)

    def environment(self) -> dict[str, str]:
        return self._environment[1]

    def apply_environment(self) -> None:
        """Set the environment variables last loaded in os.environ (at each execution start, in
        the threads of `def` executions too: one thread at a time applies a change)."""
        if self._environment[0] == self._applied_environment[0]:
            return  # nothing new: the common case, without the lock
        with self._applying:
            loaded = self._environment
            if loaded[0] != self._applied_environment[0]:
                apply_environment(loaded[1], self._applied_environment[1])
                self._applied_environment = loaded

    def follow(self, hold_s: float) -> None:
        """Ask what the pod follows, held up to ``hold_s`` while nothing changes; apply it at once
        (an old token is refused from then on), then report it."""
        if self._unreported:  # what a failed report did not tell yet
            self.update_pod(**self._unreported)
            self._unreported = {}
        known = (self.token_hash, self.refusing, self._environment[0], self._flushed)
        state = self._link.call("pod_sync", self._deployment_name, known, hold_s, timeout_s=hold_s + 30)
        if (state["token_hash"], state["refusing"], state["environment_version"], state["flush"]) == known:
            return
        report: dict[str, Any] = {}
        # A read missed a record this pod may have answered: commit, then say so (a flush that
        # timed out is asked again by the next poll).
        if state["flush"] != self._flushed and self._flush():
            self._flushed = report["flushed"] = state["flush"]
        if state["environment"] is not None:
            self._environment = (state["environment_version"], state["environment"])
            report["environment_version"] = state["environment_version"]
        if state["token_hash"] != self.token_hash or state["refusing"] != self.refusing:
            self.token_hash, self.refusing = state["token_hash"], state["refusing"]
            report["token_fingerprint"] = self.token_hash[:16] if self.token_hash else None
            if self.refusing:
                report["status"] = PodStatus.STOPPING
        self._unreported = report
        if report:
            self.update_pod(**report)
            self._unreported = {}

    def start(self, load: Callable[[], tuple[int, int]]) -> None:
        """Follow and report ``load()`` (running, waiting) on threads of their own, until ``stop``."""
        threading.Thread(target=self._follow_loop, name="rayline-follow", daemon=True).start()
        threading.Thread(target=self._report_load_loop, args=(load,), name="rayline-load", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _follow_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.follow(FOLLOW_HOLD_S)
                failures = 0
            except Exception:  # the control plane may be restarting: retry, and say so once
                failures += 1
                if failures == 1:
                    logger.exception("pod %s could not reach the control plane; retrying", self._pod_id)
                self._stop.wait(min(5.0, 0.2 * failures))

    def _report_load_loop(self, load: Callable[[], tuple[int, int]]) -> None:
        reported, failures = (0, 0), 0
        while not self._stop.wait(LOAD_REPORT_S):
            current = load()
            if current == reported:
                continue
            try:
                self.update_pod(running_executions=current[0], waiting_executions=current[1])
                reported, failures = current, 0
            except Exception:
                failures += 1
                if failures == 1:  # once per outage, not five times a second
                    logger.warning("pod %s could not report its load; retrying", self._pod_id, exc_info=True)
