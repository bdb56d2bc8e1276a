"""Finding the warm pods that died without a word, and ending what they were running.

A pod that stops reports it; one that crashes leaves a journal that the next pod on its node
replays. Neither happens when a pod's node is lost (its journal is lost with it), or when the next
pod starts elsewhere. So the control plane sweeps, every few seconds from its start (after a
control plane that died too, e.g. `rayline up --ray-address` again): it replays the journals left
on its own node, then marks failed the pods whose node Ray has lost or whose process is gone, and
ends their executions still running in Error, with the reason. Calls such a pod had answered are
kept: off the control plane's node a pod answers only once its records are committed, and on it
the journals are replayed first.

Plain Python: what Ray knows is handed in (``rayline.runtime.cluster_state``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from rayline.domain.failures import DEAD_POD_ERROR, NODE_DEATH_GRACE_S, NODE_LOST_ERROR
from rayline.store import executions as store
from rayline.store import pods
from rayline.store.db import Database
from rayline.store.record_writer import Sink, replay_tree

logger = logging.getLogger(__name__)


class PodSweeper:
    def __init__(
        self,
        db: Database,
        sink: Sink,
        journal_root: Path,
        *,
        nodes: Callable[[], dict[str, bool]],
        live_pods: Callable[[], set[str]],
        node_death_grace_s: float = NODE_DEATH_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._sink = sink  # where replayed journals go (SQL)
        self._journal_root = journal_root  # the journals of the pods of the control plane's node
        self._nodes = nodes  # every node Ray knows, by id: alive or not
        self._live_pods = live_pods  # the ids of the pods whose process is alive
        self._grace_s, self._clock = node_death_grace_s, clock
        self._gone_since: dict[str, float] = {}  # pods found gone on a node Ray still calls alive

    def sweep(self) -> int:
        """One round; returns how many pods were found gone."""
        gone = self._replay_journals()
        alive = pods.alive(self._db)
        if not alive:
            return gone
        nodes, live, now = self._nodes(), self._live_pods(), self._clock()
        for deployment_name, pod_id, node_id in alive:
            if pod_id in live:
                self._gone_since.pop(pod_id, None)
                continue
            if node_id is not None and node_id not in nodes:  # a cluster that was started anew
                reason, told = DEAD_POD_ERROR, "stopped with the Ray cluster it ran on"
            elif node_id is not None and not nodes[node_id]:
                reason, told = NODE_LOST_ERROR.format(node=node_id), f"was lost with its node ({node_id})"
            # Serve replaces a pod it cannot reach before Ray declares its node lost: wait for that,
            # so that what the pod ran says why it ended.
            elif now - self._gone_since.setdefault(pod_id, now) < self._grace_s:
                continue
            else:
                reason, told = DEAD_POD_ERROR, "stopped unexpectedly"
            self._gone_since.pop(pod_id, None)
            if pods.end(self._db, [pod_id], reason, only_alive=True):  # not ended meanwhile
                gone += 1
                store.add_deployment_log(
                    self._db,
                    deployment_name,
                    f"Pod {pod_id} {told}: what it was running ended in Error; Serve starts another.",
                    "stderr",
                )
        return gone

    def _replay_journals(self) -> int:
        """What the pods that died on this node journaled is committed, so that their answered
        calls are not ended; then what they ran ends (a replay only reads the journals no living
        process holds). Returns how many pods that was."""
        dead = replay_tree(self._sink, self._journal_root)
        for deployment_name, pod_id in pods.end(self._db, dead, DEAD_POD_ERROR, only_alive=False):
            store.add_deployment_log(
                self._db,
                deployment_name,
                f"Pod {pod_id} stopped unexpectedly; its records are saved and what it was running ended in Error.",
                "stderr",
            )
        return len(dead)
