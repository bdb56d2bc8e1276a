"""``/endpoints/...``: calls with an endpoint token (not the SDK token).

Low-latency deployments that are up never reach this module: Serve routes their prefix straight
to their replica. What arrives here is elastic calls, and calls to deployments that are stopped,
starting or unknown, which get a clear answer instead of Serve's bare 404.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from rayline.api.context import AppContext, get_context
from rayline.domain.deployments import is_timed_out
from rayline.domain.mappings import returned_outputs
from rayline.errors import InvalidInput, NotFound, Unauthorized
from rayline.store.executions import FINAL_STATUSES, SUCCEEDED
from rayline.store.models import Deployment

router = APIRouter(tags=["endpoints"])


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise InvalidInput(f"The body must be a JSON object of inputs ({error}).") from None
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object of input name to value.")
    return body


def _authorized(context: AppContext, path: str, token: str | None) -> Deployment:
    row = context.deployments.find_by_path(path)
    if row is None:
        raise NotFound(f"No endpoint at /endpoints/{path}; list_deployments() shows the deployments.")
    if not context.deployments.check_endpoint_token(row, token):
        raise Unauthorized("Missing or invalid endpoint token: send 'Authorization: EndpointToken <token>' "
                           "(get_deployment shows the deployment's endpoint_token).", scheme="EndpointToken")
    return row


def _endpoint_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme == "EndpointToken" else None


@router.post("/endpoints/{path}")
async def call_endpoint(path: str, request: Request, context: AppContext = Depends(get_context)) -> Any:
    """Run the deployment once. 200 ``{"execution_id", "output"}`` when it ends within the wait
    (``RAYLINE_ENDPOINT_WAIT_S``, 60 s), else 303 to its result URL, which a client follows."""
    row = await run_in_threadpool(_authorized, context, path, _endpoint_token(request))
    if row.mode == "low_latency":  # here only while its pod does not serve: say why, from Serve's status
        row = await run_in_threadpool(context.deployments.get, row.name)
    result = await context.deployments.trigger(row, await json_body(request))
    execution_id = result["execution_id"]
    if row.mode == "elastic":
        execution = await context.executions.wait_until_final(execution_id, context.settings.endpoint_wait_s)
        if execution.status not in FINAL_STATUSES:
            return RedirectResponse(f"/endpoints/v1/{path}/executions/{execution_id}", status_code=303)
        result = {"execution_id": execution_id, "status": execution.status, "output": returned_outputs(execution.outputs),
                  "error": execution.error, "timed_out": is_timed_out(execution.error)}
    if result["status"] == SUCCEEDED:
        return {"execution_id": execution_id, "output": result["output"]}
    timed_out = result.get("timed_out", False)
    return JSONResponse({"message": result["error"], "name": "ExecutionTimedOut" if timed_out else "ExecutionFailed",
                         "execution_id": execution_id}, status_code=504 if timed_out else 500)


@router.get("/endpoints/v1/{path}/executions/{execution_id}")
async def endpoint_result(path: str, execution_id: str, request: Request, token: str | None = None,
                          context: AppContext = Depends(get_context)) -> Any:
    """An execution's result with the endpoint token (``?token=`` or the header): held a few
    seconds, then 307 to itself while it runs."""
    row = await run_in_threadpool(_authorized, context, path, token or _endpoint_token(request))
    execution = await context.executions.wait_until_final(execution_id, context.settings.wait_hold_s)
    if execution.deployment_name != row.name:
        raise NotFound(f"Execution {execution_id!r} is not an execution of this endpoint.")
    if execution.status not in FINAL_STATUSES:
        return RedirectResponse(str(request.url), status_code=307)
    if execution.status != SUCCEEDED:
        return JSONResponse({"message": execution.error, "name": "ExecutionFailed", "execution_id": execution_id},
                            status_code=500)
    return {"execution_id": execution_id, "outputs": {k: {"value": v} for k, v in returned_outputs(execution.outputs).items()}}
