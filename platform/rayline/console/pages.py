"""The console's pages (GET, server-rendered): the overview, a deployment, an execution, a
pipeline, and the download of an execution's file inputs and outputs. Each is a thin read over
the services (``rayline.console.summaries``), rendered by ``rayline.console.views``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from rayline.api.context import AppContext, get_context
from rayline.api.http_io import file_response
from rayline.console import summaries
from rayline.console.guard import ConsoleRoute, PageNotFound, session_of
from rayline.console.sessions import Session
from rayline.console.views import page
from rayline.domain.files import FileValue
from rayline.domain.names import POD_SERVE_DEPLOYMENT
from rayline.domain.statuses import ExecutionStatus, Mode
from rayline.errors import NotFound
from rayline.store.executions import UNFINISHED_STATUSES

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
T = TypeVar("T")
EXECUTIONS_PER_PAGE = 50
PAGE_NUMBER = re.compile(r"[0-9]{1,6}", re.ASCII)
DEPLOYMENT_LOG_LINES = 300
EXECUTION_LOG_LINES = 2000
# What an action's redirect (?done=...) tells: fixed texts, so no request puts words on the page.
NOTICES = {
    "enabled": "Deployment enabled.",
    "disabled": "Deployment disabled: its calls are refused.",
    "reloaded": "Reloading the pods: a new version starts while the old one serves.",
    "token-rotated": "A new endpoint token was generated; the old one no longer works.",
    "pods": "Pod settings saved.",
}


def found(what: str, name: str, read: Callable[[], T]) -> T:
    """``read()``, its NotFound said as the page's subject: a 404 page naming what is missing."""
    try:
        return read()
    except NotFound:
        raise PageNotFound(what, name) from None


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, session: Session = Depends(session_of), context: AppContext = Depends(get_context)):
    pipelines = context.pipelines.list()
    deployments = summaries.summarize_all(context, context.deployments.list_observed())
    counts: dict[str, int] = {}
    for summary in deployments:
        counts[summary.row.pipeline_name] = counts.get(summary.row.pipeline_name, 0) + 1
    return page(
        request,
        "overview.html",
        session,
        title="Overview",
        pipelines=pipelines,
        deployment_counts=counts,
        deployments=deployments,
    )


@router.get("/deployments/{name}", response_class=HTMLResponse)
def deployment_page(
    name: str,
    request: Request,
    done: str | None = None,
    session: Session = Depends(session_of),
    context: AppContext = Depends(get_context),
):
    row = found("deployment", name, lambda: context.deployments.get(name))
    summary = summaries.summarize(context, row, recent=20, flush=True)
    logs = context.deployments.log_tail(name, limit=DEPLOYMENT_LOG_LINES)
    base = str(request.base_url).rstrip("/")
    curl = (
        summaries.curl_example(f"{base}/endpoints/{row.endpoint_url_path}", row.inputs_mapping)
        if row.endpoint_url_path
        else None
    )
    return page(
        request,
        "deployment.html",
        session,
        title=f"Deployment {name}",
        d=summary,
        logs=logs,
        cursor=logs[-1].id if logs else 0,
        curl=curl,
        scaling=summaries.scaling_fields(row) if row.mode == Mode.LOW_LATENCY else None,
        notice=NOTICES.get(done or ""),
        pod_deployment=POD_SERVE_DEPLOYMENT,
    )


@router.get("/executions/{execution_id}", response_class=HTMLResponse)
def execution_page(
    execution_id: str,
    request: Request,
    session: Session = Depends(session_of),
    context: AppContext = Depends(get_context),
):
    execution = found("execution", execution_id, lambda: context.executions.get(execution_id))
    logs = context.executions.log_tail(execution_id, limit=EXECUTION_LOG_LINES)
    return page(
        request,
        "execution.html",
        session,
        title=f"Execution {execution_id}",
        e=execution,
        running=execution.status in UNFINISHED_STATUSES,
        inputs=summaries.values_of(execution.inputs, "input"),
        outputs=summaries.values_of(execution.outputs, "output"),
        logs=logs,
        cursor=logs[-1].id if logs else 0,
        traceback=summaries.traceback_of(logs) if execution.status not in UNFINISHED_STATUSES else None,
        pod_deployment=POD_SERVE_DEPLOYMENT,
    )


@router.get("/executions/{execution_id}/files/{direction}/{name}")
def execution_file(
    execution_id: str,
    direction: str,
    name: str,
    session: Session = Depends(session_of),
    context: AppContext = Depends(get_context),
) -> Response:
    """A file input or output, downloaded (the API's route needs the SDK token, which a browser lacks)."""
    if direction not in ("input", "output"):
        raise PageNotFound("file direction", direction)
    value = found("execution", execution_id, lambda: context.executions.value(execution_id, direction, name))
    if not isinstance(value, FileValue):
        raise PageNotFound(f"file {direction}", name)
    return file_response(execution_id, value)


@router.get("/pipelines/{name}", response_class=HTMLResponse)
def pipeline_page(
    name: str,
    request: Request,
    status: str | None = None,
    page_number: str = Query("1", alias="page"),
    session: Session = Depends(session_of),
    context: AppContext = Depends(get_context),
):
    pipeline = found("pipeline", name, lambda: context.pipelines.get(name))
    status = status or None
    # Digits only (int() takes "²" and "١", isdigit() passes them); past the last page, the last.
    number = max(1, int(page_number)) if PAGE_NUMBER.fullmatch(page_number) else 1
    executions, total = context.executions.page_for_pipeline(
        name, status, (number - 1) * EXECUTIONS_PER_PAGE, EXECUTIONS_PER_PAGE
    )
    pages = max(1, -(-total // EXECUTIONS_PER_PAGE))
    if number > pages:
        number = pages
        executions, total = context.executions.page_for_pipeline(
            name, status, (number - 1) * EXECUTIONS_PER_PAGE, EXECUTIONS_PER_PAGE
        )
        pages = max(1, -(-total // EXECUTIONS_PER_PAGE))
    return page(
        request,
        "pipeline.html",
        session,
        title=f"Pipeline {name}",
        p=pipeline,
        deployments=context.deployments.list_for_pipeline(name),
        executions=executions,
        total=total,
        status=status,
        statuses=list(ExecutionStatus),
        page_number=number,
        pages=pages,
        per_page=EXECUTIONS_PER_PAGE,
    )
