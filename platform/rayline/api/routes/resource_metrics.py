"""``/resource-metrics``: what the platform's Ray nodes used over a window (craft-ai-sdk's
``get_resource_metrics``), as JSON series or, with ``download=true``, as a CSV file.

The parameters are read here, not by FastAPI, so that a bad one is a 400 whose message names it
and the fix (``rayline.domain.resource_metrics.parse_window``); the document still lists them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.domain.resource_metrics import (
    CSV_COLUMNS,
    MAX_EPOCH_MS,
    MAX_WINDOW_S,
    parse_download,
    parse_window,
    to_csv,
)

router = APIRouter(tags=["resource metrics"])


class WorkerLabel(BaseModel):
    worker: str = Field(description="The Ray node's id.")
    node_ip: str = Field(description="The Ray node's address.")
    is_head: bool


class MetricSeries(BaseModel):
    metric: WorkerLabel
    values: list[tuple[float, float]] = Field(
        description="[timestamp in seconds since the epoch, value], oldest first."
    )


AT_THE_END = "over the nodes sampled in the last three sampling intervals of the window, each as of its last sample"


class ResourceTotals(BaseModel):
    total_disk: int = Field(description=f"Bytes, {AT_THE_END} (a node whose disk size is unknown adds nothing).")
    total_ram: int = Field(description=f"Bytes, {AT_THE_END}.")
    total_vram: int | None = Field(None, description="Bytes; only when a node of the window has GPUs.")


class ResourceSeries(BaseModel):
    cpu_usage: list[MetricSeries] = Field(description="Percent.")
    disk_usage: list[MetricSeries] = Field(description="Percent.")
    ram_usage: list[MetricSeries] = Field(description="Percent.")
    vram_usage: list[MetricSeries] | None = Field(None, description="Percent; only when a node has GPUs.")
    gpu_usage: list[MetricSeries] | None = Field(None, description="Percent; only when a node has GPUs.")
    network_input_usage: list[MetricSeries] = Field(
        description="Bytes per second received, between two consecutive samples of the node."
    )
    network_output_usage: list[MetricSeries] = Field(
        description="Bytes per second sent, between two consecutive samples of the node."
    )


class ResourceMetricsPublic(BaseModel):
    additional_data: ResourceTotals
    metrics: ResourceSeries


def _epoch_ms_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": True,
        "description": description,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MS},
    }


PARAMETERS = [
    _epoch_ms_parameter("start", "The window's start, in milliseconds since the epoch (UTC)."),
    _epoch_ms_parameter(
        "end", f"The window's end, in milliseconds since the epoch; at most {MAX_WINDOW_S // 86400} days after start."
    ),
    {
        "name": "download",
        "in": "query",
        "required": False,
        "description": f"true: the same series as a CSV file ({', '.join(CSV_COLUMNS)}); any case.",
        "schema": {"type": "boolean", "default": False},
    },
]


@router.get(
    "/resource-metrics",
    response_model=None,
    openapi_extra={"parameters": PARAMETERS},
    responses={
        200: {
            "model": ResourceMetricsPublic,
            "description": "The series of each Ray node (JSON), or with download=true a CSV file.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **error_responses(
            400,
            s400="start or end missing or not a whole number of milliseconds, end before "
            "start, a window too wide, or download neither true nor false.",
        ),
    },
)
def get_resource_metrics(request: Request, context: AppContext = Depends(get_context)) -> Response:
    """CPU, RAM, disk (percent) and network (bytes per second) of every Ray node, and GPU and
    VRAM (percent) where there are GPUs, as sampled every RAYLINE_RESOURCE_METRICS_INTERVAL_S."""
    query = request.query_params
    window = parse_window(query.get("start"), query.get("end"))
    download = parse_download(query.get("download"))
    answer = context.resource_metrics.report(window)
    if download:
        return Response(
            to_csv(answer),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="resource-metrics.csv"'},
        )
    return JSONResponse(answer)
