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
        from rayline.runtime import serve_deployments
        from rayline.runtime.elastic import ElasticRunner
        from rayline.services.credentials import load_sdk_token_hash, load_secret_box
        from rayline.services.deployments import DeploymentService
        from rayline.services.executions import ExecutionService
        from rayline.services.pipelines import PipelineService
        from rayline.store.db import Database

        db = Database(settings.resolved_database_url)
        pipelines = PipelineService(db, settings)
        executions = ExecutionService(db, pipelines, ElasticRunner(db, settings.elastic_spare_workers))
        deployments = DeploymentService(db, settings, pipelines, executions, load_secret_box(settings),
                                        serve_deployments)
        self._context = AppContext(settings=settings, db=db, pipelines=pipelines, executions=executions,
                                   deployments=deployments, sdk_token_hash=load_sdk_token_hash(db))
        # SQL is the truth, Serve the runtime: bring back every enabled low-latency deployment.
        threading.Thread(target=deployments.reconcile, name="rayline-reconcile", daemon=True).start()

    def __serve_build_asgi_app__(self):
        from rayline.api.app import create_app

        return create_app(self._context)


def build(settings: Settings):
    return ControlPlane.bind(settings.for_cluster())
