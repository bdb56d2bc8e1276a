"""``/metrics/...``: pipeline metrics, as craft-ai-sdk 0.74.7 speaks them.

``record_router``: what an execution's code calls (its own credential, or the SDK token);
``router`` (SDK token only): reading metrics back, one filter at most, in pages.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from starlette.concurrency import run_in_threadpool

from rayline.api.auth import request_caller
from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.domain.code_credentials import CodeScope
from rayline.domain.metrics import MAX_ITEMS_PER_PAGE

record_router = APIRouter(tags=["metrics"])
router = APIRouter(tags=["metrics"])

RECORD_ERRORS = error_responses(400, 403, 404, s403="The credential is another execution's.")


@record_router.put("/metrics/single-value/{name}", responses=RECORD_ERRORS)
async def record_metric_value(
    name: str,
    body: Any = Body(..., examples=[{"value": 0.93, "execution_id": "my-pipeline-12"}]),
    scope: CodeScope | None = Depends(request_caller),
    context: AppContext = Depends(get_context),
):
    """Set a metric of the execution; recording the same name again replaces its value."""
    await run_in_threadpool(context.metrics.record_value, scope, name, body)
    return {"name": name}


@record_router.post("/metrics/list-values/{name}", responses=RECORD_ERRORS)
async def record_list_metric_values(
    name: str,
    body: Any = Body(..., examples=[{"values": [0.5, 0.4], "execution_id": "my-pipeline-12"}]),
    scope: CodeScope | None = Depends(request_caller),
    context: AppContext = Depends(get_context),
):
    """Append values (up to 10,000 per call) to a list metric of the execution."""
    await run_in_threadpool(context.metrics.record_list_values, scope, name, body)
    return {"name": name}


def _listing(lists: bool):
    def listing(
        name: str | None = Query(None, alias="filters[name]"),
        pipeline_name: str | None = Query(None, alias="filters[pipeline_name]"),
        deployment_name: str | None = Query(None, alias="filters[deployment_name]"),
        execution_id: str | None = Query(None, alias="filters[execution_id]"),
        page: int = 1,
        items_per_page: int = MAX_ITEMS_PER_PAGE,
        context: AppContext = Depends(get_context),
    ):
        return context.metrics.list(lists, name, pipeline_name, deployment_name, execution_id, page, items_per_page)

    return listing


router.add_api_route(
    "/metrics/single-value",
    _listing(lists=False),
    methods=["GET"],
    responses=error_responses(400),
    summary="Single-value metrics: {metrics: [{name, value, execution_id, ...}], total_count}",
)
router.add_api_route(
    "/metrics/list-values",
    _listing(lists=True),
    methods=["GET"],
    responses=error_responses(400),
    summary="List metrics: {metrics: [{name, values, execution_id, ...}], total_count}",
)
