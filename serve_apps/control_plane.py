"""The control plane as a Ray Serve application at route prefix ``/``.

Hosting it in Serve puts the REST API and the endpoints behind one HTTP entry, and lets it
deploy other Serve applications (low-latency deployments) from inside the cluster. It reserves
no CPU, so it never competes with executions for a core. This module is the composition root:
the one place where the store, the services and the Ray runtime are wired together.
"""

from __future__ import annotations

import threading

from ray import serve

from rayline.config import Settings

CONTROL_PLANE_APP = "rayline"


@serve.deployment(name="control-plane", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
@serve.ingress()
class ControlPlane:
    def __init__(self, settings: Settings) -> None:
        from rayline.api.context import AppContext
        from rayline.domain.access_tokens import AccessTokens
        from rayline.runtime import serve_deployments
        from rayline.runtime.elastic import ElasticRunner
        from rayline.services.credentials import load_sdk_token_hash, load_secret_box
        from rayline.services.deployments import DeploymentService
        from rayline.services.environment import EnvironmentService
        from rayline.services.executions import ExecutionService
        from rayline.services.pipelines import PipelineService
        from rayline.services.scheduler import Scheduler
        from rayline.store.db import Database

        db = Database(settings.resolved_database_url)
        box = load_secret_box(settings)
        pipelines = PipelineService(db, settings)
        environment = EnvironmentService(db, box)
        executions = ExecutionService(db, pipelines, ElasticRunner(db, settings.elastic_spare_workers),
                                      environment.current, settings.max_file_bytes)
        deployments = DeploymentService(db, settings, pipelines, executions, box, serve_deployments)
        self._context = AppContext(settings=settings, db=db, pipelines=pipelines, executions=executions,
                                   deployments=deployments, environment=environment,
                                   sdk_token_hash=load_sdk_token_hash(db),
                                   access_tokens=AccessTokens(settings.secret_key_path.read_bytes().strip(),
                                                              settings.access_token_ttl_s))
        # SQL is the truth, Serve the runtime: bring back every enabled low-latency deployment.
        threading.Thread(target=deployments.reconcile, name="rayline-reconcile", daemon=True).start()
        # Periodic deployments: each due time is claimed in SQL, so several control planes (or a
        # restarted one) never start it twice.
        self._stop = threading.Event()
        scheduler = Scheduler(db, deployments.start_scheduled)
        threading.Thread(target=scheduler.run, args=(self._stop,), name="rayline-scheduler", daemon=True).start()

    def __del__(self) -> None:
        self._stop.set()

    def __serve_build_asgi_app__(self):
        from rayline.api.app import create_app

        return create_app(self._context)


def build(settings: Settings):
    return ControlPlane.bind(settings.for_cluster())
