"""Finding the warm pods that died without a word, and ending what they were running.

A pod that stops reports it; one that crashes leaves a journal that the next pod on its node
replays. Neither happens when a pod's node is lost (its journal is lost with it), or when the next
pod starts elsewhere. So the control plane sweeps, every few seconds and when it starts (after a
control plane that died, e.g. `rayline up --ray-address` again): the pods whose node Ray has lost,
or whose process is gone, are marked failed, and their executions still running end in Error with
the reason. Calls such a pod had answered are kept: off the control plane's node a pod answers
only once its records are committed, and on it the control plane replays the journals of its own
node first.

Plain Python: what Ray knows is handed in (``rayline.runtime.cluster_state``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from rayline.domain.failures import CONTROL_PLANE_GONE_ERROR, DEAD_POD_ERROR, NODE_LOST_ERROR
from rayline.store import executions as store
from rayline.store import pods
from rayline.store.db import Database
from rayline.store.record_writer import Sink, replay_orphans

logger = logging.getLogger(__name__)

# How long a pod whose process is gone may wait for Ray to declare its node lost (Ray's GCS takes
# up to about 30 s after its last heartbeat) before it is taken for a crashed pod.
NODE_DEATH_GRACE_S = 45.0


class PodSweeper:
    def __init__(
        self,
        db: Database,
        sink: Sink,
        journal_root: Path,
        *,
        node_id: str,
        dead_nodes: Callable[[], set[str]],
        pod_is_alive: Callable[[str, str], bool],
        node_death_grace_s: float = NODE_DEATH_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._sink = sink  # where replayed journals go (SQL)
        self._journal_root = journal_root
        self._node_id = node_id  # the control plane's: the journals it can read are this node's
        self._dead_nodes = dead_nodes
        self._pod_is_alive = pod_is_alive  # (deployment name, pod id) -> its process is alive
        self._grace_s, self._clock = node_death_grace_s, clock
        self._gone_since: dict[str, float] = {}  # pods found gone on a node Ray still calls alive

    def sweep(self) -> int:
        """One round; returns how many pods were found gone."""
        # First what the pods that died on this node journaled, so that their answered calls are
        # not ended (replay_orphans only reads the journals no living process holds).
        for folder in sorted(self._journal_root.glob(f"*/{self._node_id}")):
            replay_orphans(self._sink, folder)
        alive = pods.alive(self._db)
        if not alive:
            return 0
        lost_nodes, now = self._dead_nodes(), self._clock()
        gone = 0
        for deployment_name, pod_id, node_id in alive:
            if node_id in lost_nodes:
                reason, told = NODE_LOST_ERROR.format(node=node_id), f"was lost with its node ({node_id})"
            elif not self._pod_is_alive(deployment_name, pod_id):
                # Serve replaces a pod it cannot reach before Ray declares its node lost: wait for
                # that, so that what the pod ran says why it ended.
                if now - self._gone_since.setdefault(pod_id, now) < self._grace_s:
                    continue
                reason, told = DEAD_POD_ERROR, "stopped unexpectedly"
            else:
                self._gone_since.pop(pod_id, None)
                continue
            self._gone_since.pop(pod_id, None)
            if pods.end_gone(self._db, [pod_id], reason):  # not ended meanwhile by another sweep
                gone += 1
                store.add_deployment_log(
                    self._db,
                    deployment_name,
                    f"Pod {pod_id} {told}: what it was running ended in Error; Serve starts another.",
                    "stderr",
                )
        return gone

    def after_control_plane_restart(self) -> int:
        """A new control plane: what an earlier one ran (elastic executions, whose Ray tasks it
        owned) ended with it; then one sweep of the pods. Returns the executions ended."""
        ended = store.end_unfinished_executions(self._db, CONTROL_PLANE_GONE_ERROR, without_pod=True)
        self.sweep()
        return ended
