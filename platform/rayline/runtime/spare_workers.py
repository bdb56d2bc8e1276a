"""Spare single-use workers for elastic executions: fresh processes started ahead of demand.

A ``max_calls=1`` task with a runtime_env costs about 0.75 s here, nearly all of it starting the
process and setting up its environment. A spare is a Ray actor created ahead with the pipeline's
runtime_env; it serves exactly one execution and is then killed, and a new one is started in
the background. Every execution still gets a process that never ran anything else.

The spares form one bounded, platform-wide cache (``RAYLINE_ELASTIC_SPARE_WORKERS``; 0 turns it
off) shared by the runtime environments used most recently: never a per-deployment reservation.
An idle spare reserves no CPU and costs one idle Python process (about 90 MB).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import ray

from rayline.runtime.worker import ExecutionJob

logger = logging.getLogger(__name__)

EnvKey = tuple[str, tuple[str, ...]]
# How long a spare may take to answer before it is handed out (about a millisecond when alive).
PING_TIMEOUT_S = 1.0


@ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)
class SpareWorker:
    def __init__(self) -> None:
        # Import now, while nobody waits. The user's code is not imported ahead: its import
        # belongs to the execution (its time, and what it prints, are the execution's).
        from rayline.runtime.worker import execute

        self._execute = execute

    def ready(self) -> str:
        """Its node's id, once it is built."""
        return ray.get_runtime_context().get_node_id()

    def run(self, job: ExecutionJob):
        return self._execute(job)


@dataclass(frozen=True)
class Spare:
    actor: Any
    ready: Any  # its ready() call: its node's id, once built

    def node_id(self) -> str | None:
        """Its node's id, if it was built (known here since then, even once the node is gone)."""
        try:
            return ray.get(self.ready, timeout=0)
        except Exception:
            return None


class SparePool:
    def __init__(self, capacity: int, resources: dict[str, float] | None = None) -> None:
        self._capacity = capacity
        self._resources = dict(resources or {})  # RAYLINE_USER_CODE_RESOURCES
        self._lock = threading.Lock()
        # Spares are ended from a thread of ours: retire() is called from a Ray future's callback,
        # where calling back into Ray can deadlock the process.
        self._retired: queue.SimpleQueue[Any] = queue.SimpleQueue()
        threading.Thread(target=self._reap, name="rayline-spare-reaper", daemon=True).start()
        self._spares: OrderedDict[EnvKey, list[tuple[Any, Any]]] = OrderedDict()  # LRU of env -> [(actor, ready)]

    def _count(self) -> int:
        return sum(len(spares) for spares in self._spares.values())

    def take(self, key: EnvKey, runtime_env: dict[str, Any]) -> Spare | None:
        """A fresh spare for this environment that still answers (then one is started to replace
        it), or None."""
        if self._capacity <= 0:
            return None
        while True:
            with self._lock:
                spares = self._spares.setdefault(key, [])
                self._spares.move_to_end(key)
                if not spares:  # nothing to hand out: start spares now for the next calls
                    self._refill(key, runtime_env)
                    return None
                candidate, ready = spares.pop(0)
            if self._answers(ready, candidate):
                return Spare(candidate, ready)
            # Its environment failed (the task path will say why), or its node or process is gone.
            self._retired.put((candidate, None, None))

    @staticmethod
    def _answers(ready: Any, actor: Any) -> bool:
        """True for a spare still being built, or one that answers a ping at once. A spare whose
        node died is not handed out: its execution would die with it, before it started (Ray
        takes seconds to tell that a node is gone; the ping tells in at most ``PING_TIMEOUT_S``)."""
        finished, _ = ray.wait([ready], timeout=0)
        if not finished:
            return True  # being built: the execution waits for it
        try:
            return ray.get(actor.ready.remote(), timeout=PING_TIMEOUT_S) == ray.get(ready, timeout=0)
        except Exception:
            return False

    def _refill(self, key: EnvKey, runtime_env: dict[str, Any]) -> None:
        # Called with the lock held. The environment used last may take every spare, from the
        # least recently used environments first.
        spares = self._spares[key]
        while len(spares) < self._capacity:
            if self._count() >= self._capacity and not self._evict_one(key):
                return
            # @ray.remote makes the class an ActorClass; mypy keeps a decorated class's own type.
            # Spread over the nodes: a node lost takes only its share of the pool, and executions
            # on spares (which reserve no CPU) do not all land on one node.
            actor = SpareWorker.options(  # type: ignore[attr-defined]
                runtime_env=runtime_env, resources=self._resources, scheduling_strategy="SPREAD"
            ).remote()
            spares.append((actor, actor.ready.remote()))

    def _evict_one(self, keep: EnvKey) -> bool:
        for key, spares in self._spares.items():  # least recently used first
            if key != keep and spares:
                actor, _ = spares.pop()
                ray.kill(actor)
                return True
        return False

    def retire(self, actor: Any, key: EnvKey, runtime_env: dict[str, Any]) -> None:
        """End a spare after its one execution and start its replacement (safe to call from a Ray
        callback). The replacement starts only now, so that building it (most of a core for
        about 0.7 s) never competes with the execution it replaces."""
        self._retired.put((actor, key, runtime_env))

    def _reap(self) -> None:
        while True:
            actor, key, runtime_env = self._retired.get()
            try:
                ray.kill(actor, no_restart=True)
                if key is not None:  # after its one execution (not a spare found dead)
                    with self._lock:
                        self._refill(key, runtime_env)
            except Exception:
                logger.exception("could not replace a spare worker")
