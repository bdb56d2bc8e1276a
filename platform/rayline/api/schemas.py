"""What the API returns, shaped as craft-api.md says (``XPublic``: one resource on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from rayline.domain.schedules import human_readable
from rayline.store.executions import MAX_LOG_LIMIT
from rayline.store.models import Deployment, Execution, ExecutionLog, Pipeline, Pod


class PipelineParameters(BaseModel):
    pipeline_name: str
    function_path: str
    function_name: str
    description: str | None
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    container_config: dict[str, Any]


class PipelineCreationInfo(BaseModel):
    created_at: datetime
    status: str
    origin: str = "local"
    commit_id: str | None = None
    last_execution_id: str | None = None


class PipelinePublic(BaseModel):
    parameters: PipelineParameters
    creation_info: PipelineCreationInfo

    @classmethod
    def from_row(cls, row: Pipeline) -> "PipelinePublic":
        inputs = [{k: v for k, v in spec.items() if v is not None} for spec in row.inputs]
        outputs = [{k: v for k, v in spec.items() if v is not None} for spec in row.outputs]
        return cls(
            parameters=PipelineParameters(pipeline_name=row.name, function_path=row.function_path,
                                          function_name=row.function_name, description=row.description,
                                          inputs=inputs, outputs=outputs, container_config=row.container_config),
            creation_info=PipelineCreationInfo(created_at=row.created_at, status=row.status,
                                               commit_id=row.package_sha256[:16]),
        )


class PipelineListItem(BaseModel):
    pipeline_name: str
    created_at: datetime
    status: str

    @classmethod
    def from_row(cls, row: Pipeline) -> "PipelineListItem":
        return cls(pipeline_name=row.name, created_at=row.created_at, status=row.status)


class ExecutionStarted(BaseModel):
    execution_id: str


class ExecutionListItem(BaseModel):
    execution_id: str
    status: str
    created_at: datetime
    start_date: datetime | None
    end_date: datetime | None
    pipeline_name: str
    deployment_name: str | None

    @classmethod
    def from_row(cls, row: Execution) -> "ExecutionListItem":
        return cls(execution_id=row.execution_id, status=row.status, created_at=row.created_at,
                   start_date=row.start_date, end_date=row.end_date, pipeline_name=row.pipeline_name,
                   deployment_name=row.deployment_name)


class ExecutionPublic(ExecutionListItem):
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    error: str | None

    @classmethod
    def from_row(cls, row: Execution) -> "ExecutionPublic":
        return cls(**ExecutionListItem.from_row(row).model_dump(), inputs=row.inputs, outputs=row.outputs,
                   error=row.error)


class ExecutionOutputs(BaseModel):
    outputs: list[dict[str, Any]]


MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class LogsQuery(BaseModel):
    """Bounds in epoch milliseconds, as craft-ai-sdk sends them."""

    model_config = {"populate_by_name": True}
    # Dates Python can represent (up to the year 9999): past them, a 400 naming the field.
    from_: int | None = Field(None, alias="from", ge=0, le=MAX_EPOCH_MS)
    to: int | None = Field(None, ge=0, le=MAX_EPOCH_MS)
    limit: int | None = Field(None, ge=1, le=MAX_LOG_LIMIT)


class LogLine(BaseModel):
    timestamp: datetime
    message: str
    stream: str

    @classmethod
    def from_row(cls, row: ExecutionLog) -> "LogLine":
        return cls(timestamp=row.timestamp, message=row.message, stream=row.stream)


class DeploymentListItem(BaseModel):
    name: str
    pipeline_name: str
    execution_rule: str
    mode: str
    is_enabled: bool
    status: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Deployment) -> "DeploymentListItem":
        return cls(name=row.name, pipeline_name=row.pipeline_name, execution_rule=row.execution_rule,
                   mode=row.mode, is_enabled=row.is_enabled, status=row.status, created_at=row.created_at)


class PodPublic(BaseModel):
    pod_id: str
    status: str
    version: int
    running_executions: int  # whose function runs now (a timed-out thread included)
    waiting_executions: int  # waiting for a slot, in arrival order


class DeploymentVersion(BaseModel):
    """Which code and settings the pods should run: bumped by every update or reload."""

    number: int
    updated_at: datetime


class DeploymentPublic(BaseModel):
    name: str
    mode: str
    pipeline: dict[str, str]
    execution_rule: str
    status: str
    is_enabled: bool
    description: str | None
    inputs_mapping: list[dict[str, Any]]
    outputs_mapping: list[dict[str, Any]]
    enable_parallel_executions: bool
    max_parallel_executions_per_pod: int
    max_queued_executions: int | None
    ram_request: str | None
    gpu_request: int | None
    execution_timeout_s: float | None
    created_at: datetime
    updated_at: datetime
    version: DeploymentVersion
    endpoint_url_path: str | None = None
    endpoint_token: str | None = None
    schedule: str | None = None
    human_readable_schedule: str | None = None
    next_run_at: datetime | None = None
    pods: list[PodPublic] | None = None

    @classmethod
    def from_row(cls, row: Deployment, endpoint_token: str | None, pods: list[Pod]) -> "DeploymentPublic":
        return cls(
            name=row.name, mode=row.mode, pipeline={"name": row.pipeline_name}, execution_rule=row.execution_rule,
            status=row.status, is_enabled=row.is_enabled, description=row.description,
            inputs_mapping=row.inputs_mapping, outputs_mapping=row.outputs_mapping,
            enable_parallel_executions=row.enable_parallel_executions,
            max_parallel_executions_per_pod=row.max_parallel_executions_per_pod,
            max_queued_executions=row.max_queued_executions,
            ram_request=row.ram_request,
            gpu_request=row.gpu_request, execution_timeout_s=row.execution_timeout_s, created_at=row.created_at,
            updated_at=row.updated_at, version=DeploymentVersion(number=row.version, updated_at=row.version_updated_at),
            endpoint_url_path=row.endpoint_url_path, endpoint_token=endpoint_token, schedule=row.schedule,
            human_readable_schedule=human_readable(row.schedule) if row.schedule else None,
            next_run_at=row.next_run_at if row.is_enabled else None,
            pods=[PodPublic(pod_id=p.pod_id, status=p.status, version=p.version,
                            running_executions=p.running_executions or 0,
                            waiting_executions=p.waiting_executions or 0) for p in pods]
            if row.mode == "low_latency" else None,
        )
