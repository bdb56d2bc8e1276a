"""What routes need, built once per control-plane replica by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from rayline.config import Settings
from rayline.domain.access_tokens import AccessTokens
from rayline.services.code_access import CodeAccess
from rayline.services.data_store import DataStoreService
from rayline.services.deployments import DeploymentService
from rayline.services.environment import EnvironmentService
from rayline.services.executions import ExecutionService
from rayline.services.metrics import MetricsService
from rayline.services.pipelines import PipelineService
from rayline.services.resource_metrics import ResourceMetricsService
from rayline.store.db import Database


@dataclass
class AppContext:
    settings: Settings
    db: Database
    pipelines: PipelineService
    executions: ExecutionService
    deployments: DeploymentService
    environment: EnvironmentService
    sdk_token_hash: str
    access_tokens: AccessTokens
    data_store: DataStoreService
    resource_metrics: ResourceMetricsService
    code_access: CodeAccess  # what an execution's code may call with its credential
    metrics: MetricsService


def get_context(request: Request) -> AppContext:
    return request.app.state.context
