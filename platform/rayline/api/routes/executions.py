from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.api.http_io import EXECUTION_ID_HEADER, file_response
from rayline.api.schemas import ExecutionDeleted, ExecutionOutputs, ExecutionPublic, LogLine, LogsQuery
from rayline.domain.files import FileValue
from rayline.errors import ExecutionFailed, ExecutionNotFinished
from rayline.store.executions import FINAL_STATUSES, SUCCEEDED

router = APIRouter(tags=["executions"])

# A file, as file_response answers it.
FILE_CONTENT = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
FILE_HEADERS = {
    EXECUTION_ID_HEADER: {"description": "The execution the file is of.", "schema": {"type": "string"}},
    "Content-Disposition": {"description": "attachment, with the file's name.", "schema": {"type": "string"}},
}
# One input's or output's value: JSON, or the file itself.
VALUE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The value as JSON, or the file itself.",
        "content": {"application/json": {"schema": {}}, **FILE_CONTENT},
        "headers": FILE_HEADERS,
    },
    **error_responses(404),
}


def from_epoch_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=UTC)


@router.get("/executions/{execution_id}", response_model=ExecutionPublic, responses=error_responses(404))
def get_execution(execution_id: str, context: AppContext = Depends(get_context)) -> ExecutionPublic:
    return ExecutionPublic.from_row(context.executions.get(execution_id))


@router.get(
    "/executions/{execution_id}/outputs",
    response_model=ExecutionOutputs,
    responses={
        307: {
            "description": "Still running: ask again (the same URL).",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **error_responses(
            400,
            404,
            409,
            s409="The execution failed (ExecutionFailed), or runs on and wait_for_completion was not asked.",
        ),
    },
)
async def get_execution_outputs(
    execution_id: str, request: Request, wait_for_completion: bool = False, context: AppContext = Depends(get_context)
) -> Any:
    """The outputs of an ended execution. With ``wait_for_completion=true`` the request is held a
    few seconds, then answered 307 to the same URL while the execution still runs."""
    if wait_for_completion:
        row = await context.executions.wait_until_final(execution_id, context.settings.wait_hold_s)
        if row.status not in FINAL_STATUSES:
            return RedirectResponse(str(request.url), status_code=307)
    else:  # on a thread: a miss asks the pods to commit, and waits for them
        row = await run_in_threadpool(context.executions.get, execution_id)
    if row.status == SUCCEEDED:
        return ExecutionOutputs(outputs=row.outputs)
    if row.status in FINAL_STATUSES:
        raise ExecutionFailed(
            f"Execution {execution_id!r} ended with status {row.status}: {row.error} "
            f"Read its logs with get_pipeline_execution_logs({execution_id!r}).",
            additional_data={"execution_id": execution_id, "status": row.status},
        )
    raise ExecutionNotFinished(
        f"Execution {execution_id!r} is {row.status}; ask with wait_for_completion=true to wait for its outputs."
    )


@router.get("/executions/{execution_id}/inputs/{name}", response_model=None, responses=VALUE_RESPONSES)
def get_execution_input_value(execution_id: str, name: str, context: AppContext = Depends(get_context)) -> Response:
    """One input's value as JSON, or the file itself (``application/octet-stream``)."""
    return _value_response(execution_id, context.executions.value(execution_id, "input", name))


@router.get("/executions/{execution_id}/outputs/{name}", response_model=None, responses=VALUE_RESPONSES)
def get_execution_output_value(execution_id: str, name: str, context: AppContext = Depends(get_context)) -> Response:
    """One output's value as JSON, or the file itself (``application/octet-stream``)."""
    return _value_response(execution_id, context.executions.value(execution_id, "output", name))


def _value_response(execution_id: str, value: Any) -> Response:
    return file_response(execution_id, value) if isinstance(value, FileValue) else JSONResponse(value)


@router.post(
    "/executions/{execution_id}/logs", response_model=list[list[LogLine]], responses=error_responses(400, 404, 413, 415)
)
def get_execution_logs(
    execution_id: str, query: LogsQuery = Body(default_factory=LogsQuery), context: AppContext = Depends(get_context)
) -> list[list[dict[str, Any]]]:
    """What the execution printed, oldest first: a list per pipeline step (one step here)."""
    rows = context.executions.logs(execution_id, from_epoch_ms(query.from_), from_epoch_ms(query.to), query.limit)
    return [[LogLine.from_row(row).model_dump(mode="json") for row in rows]]


@router.delete(
    "/executions/{execution_id}",
    response_model=ExecutionDeleted,
    responses=error_responses(404, 409, s409="The execution has not ended."),
)
def delete_execution(execution_id: str, context: AppContext = Depends(get_context)) -> dict[str, str]:
    context.executions.delete(execution_id)
    return {"execution_id": execution_id}
