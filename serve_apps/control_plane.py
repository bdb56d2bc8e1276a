"""The control plane as a Ray Serve application at route prefix ``/``.

Hosting it in Serve puts the REST API and the endpoints behind one HTTP entry, and lets it
deploy other Serve applications (low-latency deployments) from inside the cluster. It reserves
no CPU, so it never competes with executions for a core. This module is the composition root:
the one place where the store, the services and the Ray runtime are wired together.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from ray import serve

from rayline.config import Settings

# Each warm pod holds one long poll here (``pod_sync``), beside the API's own requests.
MAX_ONGOING_REQUESTS = 1024
# How often the pods that died without a word are looked for (Ray itself takes seconds to tell
# that a node is lost).
SWEEP_INTERVAL_S = 3.0


class _Changes:
    """Wakes the pods' long polls: ``notify`` when the control plane has changed what they follow
    (a token, enable/disable, the environment variables), ``wake`` when it asks them to commit
    their records (a flush), which changes nothing they follow. Called from any thread."""

    def __init__(self) -> None:
        self.generation = 0  # changes to what pods follow (a pod's cached state is good while it stays)
        self.wakes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self) -> None:
        if self._loop is None:
            self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()

    def notify(self) -> None:
        """Something pods follow changed: their state is read again, and they are answered."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, True)

    def wake(self) -> None:
        """Answer the pods' long polls with what they follow as it is (a flush asked of them)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, False)

    def _wake(self, changed: bool) -> None:
        self.generation += changed
        self.wakes += 1
        assert self._event is not None
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, since: int, timeout_s: float) -> None:
        """Until a wake after the ``since``-th, or ``timeout_s``."""
        if self.wakes != since or self._event is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)


# On the head node: it reads the platform's secrets from RAYLINE_HOME there.
@serve.deployment(
    name="control-plane",
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    ray_actor_options={"num_cpus": 0, "resources": {"node:__internal_head__": 0.001}},
)
@serve.ingress()
class ControlPlane:
    def __init__(self, settings: Settings) -> None:
        from rayline.composition import assemble
        from rayline.domain.failures import CONTROL_PLANE_GONE_ERROR
        from rayline.runtime import cluster_state, serve_deployments
        from rayline.runtime.elastic import ElasticRunner
        from rayline.runtime.node_metrics import RayNodeMetrics
        from rayline.services.platform_secrets import with_platform_secrets
        from rayline.services.pod_sweeper import PodSweeper
        from rayline.services.resource_metrics import ResourceSampler
        from rayline.store.executions import end_unfinished_executions
        from rayline.store.record_sql import sql_sink
        from serve_apps.low_latency import POD_DEPLOYMENT
        from serve_apps.low_latency import build as build_pod

        settings = with_platform_secrets(settings)
        self._changes = _Changes()
        # The pods' calls run on threads of their own: a burst of API requests (or a pod's flush,
        # which waits for these calls) must never leave them waiting for a thread.
        self._gateway_threads = ThreadPoolExecutor(max_workers=16, thread_name_prefix="rayline-gateway")
        platform = assemble(
            settings,
            serve_runtime=serve_deployments.ServeDeployments(build_pod, settings.user_code_resources),
            make_runner=lambda db, credential: ElasticRunner(
                db, credential, settings.user_code_resources, settings.user_code_url
            ),
            on_change=self._changes.notify,
            wake_pods=self._changes.wake,
        )
        self._gateway, self._context = platform.gateway, platform.context
        db, deployments = platform.context.db, platform.context.deployments
        # Before this control plane starts any: the elastic executions an earlier one left
        # running ended with it (it owned their Ray tasks), e.g. `rayline up --ray-address` again.
        end_unfinished_executions(db, CONTROL_PLANE_GONE_ERROR, without_pod=True)
        # SQL is the truth, Serve the runtime: bring back every enabled low-latency deployment.
        threading.Thread(target=deployments.reconcile, name="rayline-reconcile", daemon=True).start()
        # Periodic deployments: each due time is claimed in SQL, so several control planes (or a
        # restarted one) never start it twice.
        self._stop = threading.Event()
        threading.Thread(
            target=platform.scheduler.run, args=(self._stop,), name="rayline-scheduler", daemon=True
        ).start()
        threading.Thread(
            target=self._expire_files, args=(db, settings.file_retention_s), name="rayline-retention", daemon=True
        ).start()
        # Pods that died without a word (their node lost, their process killed): what they ran ends.
        sweeper = PodSweeper(
            db,
            sql_sink(db),
            settings.home_dir / "journal",  # this node's: the pods of the head journal there
            nodes=cluster_state.nodes,
            live_pods=lambda: cluster_state.live_replicas(POD_DEPLOYMENT),
        )
        threading.Thread(target=self._sweep, args=(sweeper,), name="rayline-sweeper", daemon=True).start()
        # What each Ray node uses, from its own metrics agent, for GET /api/v1/resource-metrics.
        sampler = ResourceSampler(
            platform.context.resource_metrics, RayNodeMetrics(), settings.resource_metrics_interval_s
        )
        threading.Thread(target=sampler.run, args=(self._stop,), name="rayline-resource-metrics", daemon=True).start()

    def _sweep(self, sweeper) -> None:
        import logging

        while True:
            try:
                sweeper.sweep()
            except Exception:  # the database or the GCS may be briefly unavailable: the next round retries
                logging.getLogger(__name__).warning("could not sweep the pods", exc_info=True)
            if self._stop.wait(SWEEP_INTERVAL_S):
                return

    def _expire_files(self, db, retention_s: float) -> None:
        """Files of ended executions go once RAYLINE_FILE_RETENTION_S has passed (records stay)."""
        import logging
        from datetime import timedelta

        from rayline.store.executions import delete_files_ended_before
        from rayline.store.models import utcnow

        while not self._stop.wait(min(600.0, max(1.0, retention_s / 10))):
            try:
                delete_files_ended_before(db, utcnow() - timedelta(seconds=retention_s))
            except Exception:  # the database may be briefly unavailable: the next round retries
                logging.getLogger(__name__).warning("could not remove expired execution files", exc_info=True)

    def __del__(self) -> None:
        self._stop.set()

    # --- the pods' narrow path (rayline.services.pod_gateway), through Serve handles ------------

    async def _on_gateway_thread(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._gateway_threads, function, *args)

    async def pod_sync(self, credential: str, deployment_name: str, known: tuple, hold_s: float) -> dict[str, Any]:
        """The state a pod follows, held up to ``hold_s`` (30 s at most) while it is ``known``
        (``(token_hash, refusing, environment_version, flush)``): an idle pod asks once per hold,
        and is answered without a database read while nothing changed."""
        self._changes.bind()
        known = tuple(known)  # a pod of an earlier version follows no flush: the first three only
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(hold_s, 0.0), 30.0)
        while True:
            since = self._changes.wakes
            state = await self._on_gateway_thread(
                self._gateway.pod_state, credential, deployment_name, known[2], self._changes.generation
            )
            remaining = deadline - loop.time()
            followed = (state["token_hash"], state["refusing"], state["environment_version"], state["flush"])
            if followed[: len(known)] != known or remaining <= 0:
                return state
            await self._changes.wait(since, remaining)
            if self._changes.wakes == since:  # held to the end with no change
                return state

    async def register_pod(
        self,
        credential: str,
        deployment_name: str,
        pod_id: str,
        version: int,
        dead_pods: list[str],
        node_id: str | None = None,
    ) -> None:
        await self._on_gateway_thread(
            self._gateway.register_pod, credential, deployment_name, pod_id, version, dead_pods, node_id
        )

    async def update_pod(self, credential: str, deployment_name: str, pod_id: str, fields: dict[str, Any]) -> None:
        await self._on_gateway_thread(self._gateway.update_pod, credential, deployment_name, pod_id, fields)

    async def take_ids(self, credential: str, deployment_name: str, count: int) -> list[int]:
        return await self._on_gateway_thread(self._gateway.take_ids, credential, deployment_name, count)

    async def write_records(
        self, credential: str, deployment_name: str, events: list[dict[str, Any]], replaying: bool
    ) -> None:
        await self._on_gateway_thread(self._gateway.write, credential, deployment_name, events, replaying)

    async def append_execution_logs(
        self, credential: str, execution_id: str, records: list[tuple[datetime, str, str]]
    ) -> None:
        await self._on_gateway_thread(self._gateway.append_execution_logs, credential, execution_id, records)

    def __serve_build_asgi_app__(self):
        from rayline.api.app import create_app

        return create_app(self._context)


def build(settings: Settings):
    # @serve.deployment makes the class a Deployment; mypy keeps a decorated class's own type.
    return ControlPlane.bind(settings.for_cluster())  # type: ignore[attr-defined]
