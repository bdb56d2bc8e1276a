"""The composition root: the one place where the store, the services and the runtime are wired.

The control plane (``serve_apps.control_plane``) calls ``assemble`` with Ray's pieces (Serve for
warm deployments, Ray tasks for elastic executions); tests call it with fakes of the same two
seams (``ServeRuntime``, ``Runner``) and get the same services and routes, on SQLite, without Ray.
Nothing here imports Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rayline.api.context import AppContext
from rayline.config import Settings
from rayline.domain.access_tokens import AccessTokens
from rayline.domain.code_credentials import code_environment
from rayline.domain.signed_urls import UrlSigner
from rayline.services.code_access import CodeAccess
from rayline.services.credentials import load_sdk_token_hash, load_secret_box
from rayline.services.data_store import DataStoreService, ObjectStorage
from rayline.services.deployments import DeploymentService, ServeRuntime
from rayline.services.environment import EnvironmentService
from rayline.services.executions import ExecutionService, Runner
from rayline.services.metrics import MetricsService
from rayline.services.pipelines import PipelineService
from rayline.services.pod_gateway import PodGateway
from rayline.services.resource_metrics import ResourceMetricsService
from rayline.services.scheduler import Scheduler
from rayline.store.db import Database

# What the elastic runner is built from: the database it records in, and what issues an
# execution's log credential (execution id, seconds) -> credential.
RunnerFactory = Callable[[Database, Callable[[str, float], str]], Runner]


@dataclass
class Assembled:
    context: AppContext  # what the routes use
    gateway: PodGateway  # the pods' narrow path
    scheduler: Scheduler  # periodic deployments, run by the caller on a thread of its own


def assemble(
    settings: Settings,
    *,
    serve_runtime: ServeRuntime,
    make_runner: RunnerFactory,
    on_change: Callable[[], None] = lambda: None,
    wake_pods: Callable[[], None] = lambda: None,
) -> Assembled:
    """Wire the platform over ``settings`` (its secrets already read: ``with_platform_secrets``).
    ``on_change`` is called when something pods follow changed (they are woken to read it);
    ``wake_pods`` answers their long polls without such a change (a flush asked of them)."""
    db = Database(settings.resolved_database_url)
    box = load_secret_box(settings)
    secret_key = settings.secret_key_path.read_bytes().strip()
    gateway = PodGateway(db, secret_key, box.open, wake=wake_pods)
    pipelines = PipelineService(db, settings)
    environment = EnvironmentService(db, box, on_change=on_change)
    executions = ExecutionService(
        db,
        pipelines,
        make_runner(db, gateway.execution_credential),
        environment.current,
        settings.max_file_bytes,
        flush_pod=gateway.flush_pods,
    )
    deployments = DeploymentService(
        db,
        settings,
        pipelines,
        executions,
        box,
        serve_runtime,
        pod_credential=gateway.pod_credential,
        code_environment=lambda name, created_at: code_environment(
            settings.user_code_url, gateway.credentials.for_deployment(name, created_at)
        ),
        on_change=on_change,
    )
    # Read once: the SDK token changes only through `rayline up`, which redeploys the control plane.
    sdk_token_hash = load_sdk_token_hash(db)
    code_access = CodeAccess(db, gateway.credentials)
    context = AppContext(
        settings=settings,
        db=db,
        pipelines=pipelines,
        executions=executions,
        deployments=deployments,
        environment=environment,
        sdk_token_hash=sdk_token_hash,
        access_tokens=AccessTokens(secret_key, sdk_token_hash, settings.access_token_ttl_s),
        data_store=DataStoreService(
            _object_storage(settings, UrlSigner(secret_key)),
            settings.max_data_store_object_bytes,
            settings.data_store_url_ttl_s,
        ),
        resource_metrics=ResourceMetricsService(
            db, settings.resource_metrics_retention_s, interval_s=settings.resource_metrics_interval_s
        ),
        code_access=code_access,
        metrics=MetricsService(db, code_access),
    )
    return Assembled(context, gateway, Scheduler(db, deployments.start_scheduled))


def _object_storage(settings: Settings, signer: UrlSigner) -> ObjectStorage:
    """The data store's backend: S3 for an s3:// RAYLINE_DATA_STORE_URL, else a folder of home."""
    if settings.data_store_url:
        from rayline.store.data_store_s3 import S3Storage

        return S3Storage(settings.data_store_url)
    from rayline.store.data_store_folder import FolderStorage

    return FolderStorage(settings.home_dir / "data-store", signer)
