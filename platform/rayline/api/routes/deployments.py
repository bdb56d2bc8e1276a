from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from starlette.concurrency import run_in_threadpool

from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.api.http_io import read_inputs
from rayline.api.routes.executions import from_epoch_ms
from rayline.api.routes.pipelines import INPUTS_BODY
from rayline.api.schemas import (
    DeploymentDeleted,
    DeploymentListItem,
    DeploymentLogLine,
    DeploymentPublic,
    DeploymentUpdate,
    EndpointDeploymentCreate,
    EndpointTokenPublic,
    ExecutionListItem,
    ExecutionStarted,
    LogsQuery,
    NoExecution,
    PeriodicDeploymentCreate,
)
from rayline.domain.deployments import FINAL_STATUSES
from rayline.domain.outcomes import Ended
from rayline.domain.statuses import ExecutionRule
from rayline.domain.tokens import MIN_CHOSEN_TOKEN_LENGTH
from rayline.errors import InvalidInput
from rayline.store.models import Deployment

router = APIRouter(tags=["deployments"])

CREATE_ERRORS = error_responses(
    400,
    404,
    409,
    413,
    415,
    s404="No such pipeline.",
    s409="A deployment of this name or endpoint_url_path exists, or the pipeline is not ready.",
)
# generate-new-token's form: the token to set, or none to have one generated.
TOKEN_FORM = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "endpoint_token": {
            "type": "string",
            "anyOf": [{"maxLength": 0}, {"minLength": MIN_CHOSEN_TOKEN_LENGTH}],
            "description": f"At least {MIN_CHOSEN_TOKEN_LENGTH} characters; empty or left out: a generated one.",
        }
    },
}


def public(context: AppContext, row: Deployment) -> DeploymentPublic:
    return DeploymentPublic.from_row(row, context.deployments.endpoint_token(row), context.deployments.pods(row.name))


def _fields(body: EndpointDeploymentCreate | PeriodicDeploymentCreate | DeploymentUpdate) -> dict[str, Any]:
    """What the client sent (unknown fields included: the service decides on them)."""
    return body.model_dump(exclude_unset=True)


@router.post("/endpoints", status_code=201, response_model=DeploymentPublic, responses=CREATE_ERRORS)
def create_endpoint_deployment(body: EndpointDeploymentCreate, context: AppContext = Depends(get_context)):
    """Create an endpoint deployment (``POST {env}/endpoints/<endpoint_url_path>``)."""
    return public(context, context.deployments.create({**_fields(body), "execution_rule": ExecutionRule.ENDPOINT}))


@router.post("/periodic-deployment", status_code=201, response_model=DeploymentPublic, responses=CREATE_ERRORS)
def create_periodic_deployment(body: PeriodicDeploymentCreate, context: AppContext = Depends(get_context)):
    """Create a periodic deployment: ``schedule`` is a 5-field cron expression, in UTC."""
    return public(context, context.deployments.create({**_fields(body), "execution_rule": ExecutionRule.PERIODIC}))


@router.get("/deployments", response_model=list[DeploymentListItem])
def list_deployments(context: AppContext = Depends(get_context)):
    return [DeploymentListItem.from_row(row) for row in context.deployments.list()]


@router.get("/deployments/{name}", response_model=DeploymentPublic, responses=error_responses(400, 404))
async def get_deployment(name: str, wait_for_completion: bool = False, context: AppContext = Depends(get_context)):
    """With ``wait_for_completion=true`` the request is held a few seconds while the status is not
    final (``up``, ``creation_failed``, ``disabled``, ``standby``), so clients need not spin."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (context.settings.wait_hold_s if wait_for_completion else 0)
    while True:
        row = await run_in_threadpool(context.deployments.get, name)
        if row.status in FINAL_STATUSES or loop.time() >= deadline:
            return await run_in_threadpool(public, context, row)
        await asyncio.sleep(0.25)


@router.patch("/deployments/{name}", response_model=DeploymentPublic, responses=error_responses(400, 404, 413, 415))
def update_deployment(
    name: str,
    body: DeploymentUpdate = Body(default_factory=DeploymentUpdate),
    context: AppContext = Depends(get_context),
):
    return public(context, context.deployments.update(name, _fields(body)))


@router.delete("/deployments/{name}", response_model=DeploymentDeleted, responses=error_responses(404))
def delete_deployment(name: str, context: AppContext = Depends(get_context)) -> dict[str, str]:
    row = context.deployments.delete(name)
    return {"name": row.name, "execution_rule": row.execution_rule}


@router.post(
    "/deployments/{name}/logs", response_model=list[DeploymentLogLine], responses=error_responses(400, 404, 413, 415)
)
def get_deployment_logs(
    name: str, query: LogsQuery = Body(default_factory=LogsQuery), context: AppContext = Depends(get_context)
) -> list[dict[str, Any]]:
    rows = context.deployments.logs(name, from_epoch_ms(query.from_), from_epoch_ms(query.to), query.limit)
    return [
        {
            "timestamp": row.timestamp.isoformat().replace("+00:00", "Z"),
            "message": row.message,
            "stream": row.stream,
            "pod_id": row.pod_id,
            "type": row.type,
        }
        for row in rows
    ]


@router.get("/deployments/{name}/executions/latest", response_model=ExecutionListItem | NoExecution)
def latest_deployment_execution(name: str, context: AppContext = Depends(get_context)) -> dict[str, Any]:
    """The latest execution, or ``{}`` when there is none yet (never a 404: clients rely on it)."""
    row = context.executions.latest_for_deployment(name)
    return ExecutionListItem.from_row(row).model_dump(mode="json") if row else {}


@router.post(
    "/deployments/{name}/executions",
    response_model=ExecutionStarted,
    openapi_extra={"requestBody": {"content": INPUTS_BODY}},
    responses=error_responses(400, 404, 413, 503, s400="Bad inputs, or not an endpoint deployment."),
)
async def trigger_deployment(name: str, request: Request, context: AppContext = Depends(get_context)):
    """Trigger an endpoint with the SDK token instead of the endpoint token."""
    row = await run_in_threadpool(context.deployments.get, name)
    started = await context.deployments.trigger(row, await read_inputs(request, context.settings.max_file_bytes))
    return ExecutionStarted(execution_id=started.execution_id if isinstance(started, Ended) else started)


@router.post(
    "/endpoints/{name}/generate-new-token",
    response_model=EndpointTokenPublic,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {"schema": TOKEN_FORM},
                "multipart/form-data": {"schema": TOKEN_FORM},
            }
        }
    },
    responses=error_responses(400, 404, 413, s400="Not an endpoint deployment, or a token too short."),
)
async def generate_new_endpoint_token(name: str, request: Request, context: AppContext = Depends(get_context)):
    form = await request.form(max_files=0, max_fields=10)
    unknown = sorted(set(form) - {"endpoint_token"})
    if unknown:
        raise InvalidInput(f"generate-new-token takes only the form field endpoint_token, not {', '.join(unknown)}.")
    given = form.get("endpoint_token")
    chosen = given if isinstance(given, str) and given else None  # none: a generated one
    return {"endpoint_token": await run_in_threadpool(context.deployments.rotate_token, name, chosen)}
