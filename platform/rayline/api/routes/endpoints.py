"""``/endpoints/...``: calls with an endpoint token (not the SDK token).

Low-latency deployments that are up never reach this module: Serve routes their prefix straight
to their replica. What arrives here is elastic calls, and calls to deployments that are stopped,
starting or unknown, which get a clear answer instead of Serve's bare 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rayline.api.context import AppContext, get_context
from rayline.api.http_io import file_response, output_response, read_inputs
from rayline.domain.deployments import is_timed_out
from rayline.domain.mappings import returned_files, returned_outputs
from rayline.domain.files import FileValue
from rayline.errors import NotFound, Unauthorized
from rayline.store.executions import FINAL_STATUSES, SUCCEEDED
from rayline.store.models import Deployment

router = APIRouter(tags=["endpoints"])


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
    """Run the deployment once. 200 ``{"execution_id", "output"}`` (or the file, for a file
    output) when it ends within the wait (``RAYLINE_ENDPOINT_WAIT_S``, 60 s), else 303 to its
    result URL, which a client follows."""
    row = await run_in_threadpool(_authorized, context, path, _endpoint_token(request))
    if row.mode == "low_latency":  # here only while its pod does not serve: say why, from Serve's status
        row = await run_in_threadpool(context.deployments.get, row.name)
    result = await context.deployments.trigger(row, await read_inputs(request, context.settings.max_file_bytes))
    execution_id = result["execution_id"]
    if row.mode == "elastic":
        execution = await context.executions.wait_until_final(execution_id, context.settings.endpoint_wait_s)
        if execution.status not in FINAL_STATUSES:  # with the id in the body, for clients that do not follow
            return JSONResponse({"execution_id": execution_id}, status_code=303,
                                headers={"Location": f"/endpoints/v1/{path}/executions/{execution_id}"})
        result = {"execution_id": execution_id, "status": execution.status, "error": execution.error,
                  "output": await run_in_threadpool(context.executions.returned_output, execution),
                  "timed_out": is_timed_out(execution.error)}
    if result["status"] == SUCCEEDED:
        return output_response(execution_id, result["output"])
    return _failure(execution_id, result["error"], result.get("timed_out", False))


def _failure(execution_id: str, error: str | None, timed_out: bool) -> JSONResponse:
    return JSONResponse({"message": error, "name": "ExecutionTimedOut" if timed_out else "ExecutionFailed",
                         "execution_id": execution_id}, status_code=504 if timed_out else 500)


@router.get("/endpoints/v1/{path}/executions/{execution_id}")
async def endpoint_result(path: str, execution_id: str, request: Request, token: str | None = None,
                          context: AppContext = Depends(get_context)) -> Any:
    """An execution's result with the endpoint token (``?token=`` or the header): held a few
    seconds, then 307 to itself while it runs. A file output is given as the URL to fetch it."""
    row = await run_in_threadpool(_authorized, context, path, token or _endpoint_token(request))
    execution = await context.executions.wait_until_final(execution_id, context.settings.wait_hold_s)
    if execution.deployment_name != row.name:
        raise NotFound(f"Execution {execution_id!r} is not an execution of this endpoint.")
    if execution.status not in FINAL_STATUSES:
        return RedirectResponse(str(request.url), status_code=307)
    if execution.status != SUCCEEDED:
        return _failure(execution_id, execution.error, is_timed_out(execution.error))
    files = returned_files(execution.outputs)
    outputs = {name: {"url": f"{str(request.base_url).rstrip('/')}/endpoints/v1/{path}/executions/{execution_id}"
                             f"/outputs/{name}"} if name in files else {"value": value}
               for name, value in returned_outputs(execution.outputs).items()}
    return {"execution_id": execution_id, "outputs": outputs}


@router.get("/endpoints/v1/{path}/executions/{execution_id}/outputs/{name}")
async def endpoint_file(path: str, execution_id: str, name: str, request: Request, token: str | None = None,
                        context: AppContext = Depends(get_context)) -> Response:
    """A file output of an endpoint's execution, with the endpoint token."""
    row = await run_in_threadpool(_authorized, context, path, token or _endpoint_token(request))
    execution = await run_in_threadpool(context.executions.get, execution_id)
    if execution.deployment_name != row.name:
        raise NotFound(f"Execution {execution_id!r} is not an execution of this endpoint.")
    output = await run_in_threadpool(context.executions.returned_output, execution)
    if not isinstance(output.get(name), FileValue):
        raise NotFound(f"Execution {execution_id!r} returned no file named {name!r}.")
    return file_response(execution_id, output[name])
