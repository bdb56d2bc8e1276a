"""``/endpoints/...``: calls with an endpoint token (not the SDK token).

Low-latency deployments that are up never reach this module: Serve routes their prefix straight
to their replica. What arrives here is elastic calls, and calls to deployments that are stopped
or starting, which get a clear answer instead of Serve's bare 404. A caller learns nothing beyond
its own deployment: without its token, a path where no deployment is gets the same 401 as one
where a deployment is, and an execution that is not this endpoint's the same 404 as none at all.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rayline.api.auth import ENDPOINT_TOKEN_SCHEME
from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.api.http_errors import outcome_response
from rayline.api.http_io import file_response, read_inputs
from rayline.api.routes.executions import FILE_CONTENT, FILE_HEADERS
from rayline.api.routes.pipelines import INPUTS_BODY
from rayline.api.schemas import EndpointOutput, EndpointResult, EndpointStillRunning
from rayline.domain.deployments import is_timed_out
from rayline.domain.files import FileValue
from rayline.domain.mappings import returned_files, returned_outputs
from rayline.domain.outcomes import Ended
from rayline.domain.statuses import ExecutionStatus, Mode
from rayline.domain.tokens import ENDPOINT_TOKEN_REFUSED, bearer_of, generate_token, hash_token, token_matches
from rayline.errors import NotFound, Unauthorized
from rayline.store.executions import FINAL_STATUSES
from rayline.store.models import Deployment, Execution

router = APIRouter(tags=["endpoints"], dependencies=[Depends(ENDPOINT_TOKEN_SCHEME)])

_LOCATION = {"Location": {"description": "The result URL.", "schema": {"type": "string"}}}
_FAILED = error_responses(
    500, 504, s500="The execution failed (ExecutionFailed, with its execution_id), or the platform did (InternalError)."
)
CALL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The outputs, or the file itself when the endpoint's output is a file.",
        "content": {"application/json": {"schema": EndpointOutput.model_json_schema()}, **FILE_CONTENT},
        "headers": FILE_HEADERS,
    },
    303: {
        "model": EndpointStillRunning,
        "description": "Still running after RAYLINE_ENDPOINT_WAIT_S: the result is at Location.",
        "headers": _LOCATION,
    },
    **error_responses(400, 401, 413, 503),
    **_FAILED,
}
RESULT_RESPONSES: dict[int | str, dict[str, Any]] = {
    307: {"description": "Still running: ask again (the same URL).", "headers": _LOCATION},
    **error_responses(401, 404),
    **_FAILED,
}


# What an unknown path's "token" is compared with, so that a missing endpoint takes as long to
# refuse as a wrong token: the caller learns nothing about which paths exist.
_UNKNOWN_PATH_HASH = hash_token(generate_token())


def _authorized(context: AppContext, path: str, token: str | None) -> Deployment:
    """The deployment at ``path`` when ``token`` is its token; else 401, the same for a path where
    no deployment is (never a 404 that would tell which paths exist)."""
    row = context.deployments.find_by_path(path)
    valid = (
        context.deployments.check_endpoint_token(row, token)
        if row is not None
        else token_matches(token, _UNKNOWN_PATH_HASH)
    )
    if row is None or not valid:
        raise Unauthorized(ENDPOINT_TOKEN_REFUSED, scheme="EndpointToken")
    return row


async def _own_execution(
    context: AppContext, row: Deployment, path: str, execution_id: str, hold_s: float
) -> Execution:
    """The execution if it is one of this endpoint's, held up to ``hold_s`` while it runs. Whose
    it is is checked before anything waits on it: by its id's form (``<deployment>-<number>``),
    then by its record. The same 404 for another deployment's execution as for none at all."""
    missing = NotFound(f"No execution {execution_id!r} at /endpoints/{path}.")
    if not re.fullmatch(re.escape(row.name) + r"-[0-9]+", execution_id):
        raise missing
    try:
        execution = await run_in_threadpool(context.executions.get, execution_id)
    except NotFound:
        execution = None  # a warm pod's record may be a moment late: waited for below
    if execution is not None and not _belongs(execution, row):
        raise missing
    if execution is None or (hold_s > 0 and execution.status not in FINAL_STATUSES):
        try:
            execution = await context.executions.wait_until_final(execution_id, hold_s)
        except NotFound:
            raise missing from None
        if not _belongs(execution, row):
            raise missing
    return execution


def _belongs(execution: Execution, row: Deployment) -> bool:
    # Created after the deployment: a deleted deployment of the same name kept its executions
    # (ids are never reused), and the new deployment's token must not open them.
    return execution.deployment_name == row.name and execution.created_at >= row.created_at


def _endpoint_token(request: Request) -> str | None:
    return bearer_of(request.headers.get("authorization"), "EndpointToken")


@router.post(
    "/endpoints/{path}",
    response_model=None,
    responses=CALL_RESPONSES,
    openapi_extra={"requestBody": {"content": INPUTS_BODY}},
)
async def call_endpoint(path: str, request: Request, context: AppContext = Depends(get_context)) -> Any:
    """Run the deployment once. 200 ``{"execution_id", "output"}`` (or the file, for a file
    output) when it ends within the wait (``RAYLINE_ENDPOINT_WAIT_S``, 60 s), else 303 to its
    result URL, which a client follows."""
    row = await run_in_threadpool(_authorized, context, path, _endpoint_token(request))
    if row.mode == Mode.LOW_LATENCY:  # here only while its pod does not serve: say why, from Serve's status
        row = await run_in_threadpool(context.deployments.get, row.name)
    started = await context.deployments.trigger(row, await read_inputs(request, context.settings.max_file_bytes))
    if isinstance(started, Ended):  # a warm pod's, already over
        return outcome_response(started)
    execution = await context.executions.wait_until_final(started, context.settings.endpoint_wait_s)
    if execution.status not in FINAL_STATUSES:  # with the id in the body, for clients that do not follow
        return JSONResponse(
            {"execution_id": started},
            status_code=303,
            headers={"Location": f"/endpoints/v1/{path}/executions/{started}"},
        )
    if returned_files(execution.outputs):  # read from SQL
        return outcome_response(await run_in_threadpool(_ended, context, execution))
    return outcome_response(_ended(context, execution))


@router.api_route(
    "/endpoints/{path}", methods=["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], include_in_schema=False
)
def endpoint_other_method(path: str, request: Request, context: AppContext = Depends(get_context)) -> Response:
    """Only POST calls an endpoint; the token is checked first all the same, as a warm pod does."""
    _authorized(context, path, _endpoint_token(request))
    return JSONResponse(
        {"message": f"Call this endpoint with POST /endpoints/{path}.", "name": "MethodNotAllowed"},
        status_code=405,
        headers={"Allow": "POST"},
    )


def _ended(context: AppContext, execution: Execution) -> Ended:
    """A finished execution's record as the outcome its caller gets."""
    status = ExecutionStatus(execution.status)
    output = context.executions.returned_output(execution) if status == ExecutionStatus.SUCCEEDED else {}
    return Ended(execution.execution_id, status, output, execution.error, is_timed_out(execution.error))


@router.get("/endpoints/v1/{path}/executions/{execution_id}", response_model=EndpointResult, responses=RESULT_RESPONSES)
async def endpoint_result(
    path: str, execution_id: str, request: Request, token: str | None = None, context: AppContext = Depends(get_context)
) -> Any:
    """An execution's result with the endpoint token: held a few seconds, then 307 to itself while
    it runs. A file output is given as the URL to fetch it.

    The token goes in the ``Authorization: EndpointToken <token>`` header (RaylineSdk sends it
    there). ``?token=`` is accepted too, because craft-ai-sdk 0.74.7 sends it so; a token in a
    URL ends up in access logs, so clients should prefer the header."""
    row = await run_in_threadpool(_authorized, context, path, _endpoint_token(request) or token)
    execution = await _own_execution(context, row, path, execution_id, context.settings.wait_hold_s)
    if execution.status not in FINAL_STATUSES:
        return RedirectResponse(str(request.url), status_code=307)
    if execution.status != ExecutionStatus.SUCCEEDED:
        return outcome_response(_ended(context, execution))
    files = returned_files(execution.outputs)
    outputs = {
        name: {
            "url": f"{str(request.base_url).rstrip('/')}/endpoints/v1/{path}/executions/{execution_id}/outputs/{name}"
        }
        if name in files
        else {"value": value}
        for name, value in returned_outputs(execution.outputs).items()
    }
    return {"execution_id": execution_id, "outputs": outputs}


@router.get(
    "/endpoints/v1/{path}/executions/{execution_id}/outputs/{name}",
    response_model=None,
    responses={
        200: {"description": "The file.", "content": FILE_CONTENT, "headers": FILE_HEADERS},
        **error_responses(401, 404),
    },
)
async def endpoint_file(
    path: str,
    execution_id: str,
    name: str,
    request: Request,
    token: str | None = None,
    context: AppContext = Depends(get_context),
) -> Response:
    """A file output of an endpoint's execution, with the endpoint token (the header, or
    ``?token=`` as craft-ai-sdk 0.74.7 sends it)."""
    row = await run_in_threadpool(_authorized, context, path, _endpoint_token(request) or token)
    execution = await _own_execution(context, row, path, execution_id, 0)
    output = await run_in_threadpool(context.executions.returned_output, execution)
    if not isinstance(output.get(name), FileValue):
        raise NotFound(f"Execution {execution_id!r} returned no file named {name!r}.")
    return file_response(execution_id, output[name])
