from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.concurrency import run_in_threadpool

from rayline.api.context import AppContext, get_context
from rayline.api.http_io import read_inputs
from rayline.api.schemas import (ExecutionListItem, ExecutionStarted, PipelineListItem, PipelinePublic)
from rayline.domain.forms import declarations, unflatten
from rayline.errors import InvalidInput
from rayline.services.executions import parse_json_field
from rayline.services.pipelines import PipelineCreate

router = APIRouter(tags=["pipelines"])


@router.get("/project-information")
def project_information() -> dict[str, Any]:
    """Defaults craft-ai-sdk asks for before packing a folder: Rayline takes the whole folder."""
    return {"included_folders": None, "requirements_path": None}


@router.post("/pipelines", status_code=201, response_model=PipelinePublic)
async def create_pipeline(request: Request, context: AppContext = Depends(get_context)) -> PipelinePublic:
    """Create a pipeline from a multipart form: fields plus the folder as a tar.gz part ``step_file``.
    The body is bounded as it arrives by ``RequestGuard`` (``RAYLINE_MAX_UPLOAD_BYTES`` plus the
    form's fields), the archive itself by the pipeline service."""
    form = await request.form(max_files=1, max_fields=2000)
    step_file = form.get("step_file")
    if not isinstance(step_file, UploadFile):
        raise InvalidInput("step_file is required: the pipeline's folder as a tar.gz file part.")
    archive = await step_file.read()
    fields = unflatten((key, value) for key, value in form.multi_items() if isinstance(value, str))
    container_config = fields.get("container_config") or {}
    if not isinstance(container_config, dict):
        raise InvalidInput("container_config must be an object, e.g. container_config[requirements_path].")
    params = PipelineCreate(
        pipeline_name=fields.get("pipeline_name", ""), function_path=fields.get("function_path", ""),
        function_name=fields.get("function_name", ""), description=fields.get("description"),
        inputs=declarations("inputs", fields.get("inputs")), outputs=declarations("outputs", fields.get("outputs")),
        container_config=container_config,
    )
    row = await run_in_threadpool(context.pipelines.create, params, archive)
    return PipelinePublic.from_row(row)


@router.get("/pipelines", response_model=list[PipelineListItem])
def list_pipelines(context: AppContext = Depends(get_context)) -> list[PipelineListItem]:
    return [PipelineListItem.from_row(row) for row in context.pipelines.list()]


@router.get("/pipelines/{pipeline_name}", response_model=PipelinePublic)
def get_pipeline(pipeline_name: str, wait_for_completion: bool = False,
                 context: AppContext = Depends(get_context)) -> PipelinePublic:
    # Pipelines are ready as soon as they are stored, so there is nothing to wait for.
    return PipelinePublic.from_row(context.pipelines.get(pipeline_name))


@router.delete("/pipelines/{pipeline_name}")
def delete_pipeline(pipeline_name: str, force_deployments_deletion: bool = False,
                    context: AppContext = Depends(get_context)) -> dict[str, Any]:
    return context.pipelines.delete(
        pipeline_name, lambda name: context.deployments.delete_for_pipeline(name, force_deployments_deletion))


@router.post("/pipelines/{pipeline_name}/run", response_model=ExecutionStarted)
async def run_pipeline(pipeline_name: str, request: Request,
                       context: AppContext = Depends(get_context)) -> ExecutionStarted:
    """Start one execution. Form fields ``json_inputs``, ``inputs_mapping``, ``outputs_mapping``
    (JSON), and one file part per file input (multipart)."""
    fields = await read_inputs(request, context.settings.max_file_bytes)
    inputs = parse_json_field("json_inputs", fields.pop("json_inputs", None), {})
    inputs_mapping = parse_json_field("inputs_mapping", fields.pop("inputs_mapping", None), [])
    outputs_mapping = parse_json_field("outputs_mapping", fields.pop("outputs_mapping", None), [])
    if not isinstance(inputs, dict):
        raise InvalidInput("json_inputs must be a JSON object of input name to value.")
    inputs.update(fields)  # the file parts
    execution = await run_in_threadpool(context.executions.run_pipeline, pipeline_name, inputs,
                                        inputs_mapping, outputs_mapping)
    return ExecutionStarted(execution_id=execution.execution_id)


@router.get("/pipelines/{pipeline_name}/executions", response_model=list[ExecutionListItem])
def list_pipeline_executions(pipeline_name: str, context: AppContext = Depends(get_context)) -> list[ExecutionListItem]:
    return [ExecutionListItem.from_row(row) for row in context.executions.list_for_pipeline(pipeline_name)]


@router.get("/pipelines/{pipeline_name}/executions/latest")
def latest_pipeline_execution(pipeline_name: str, context: AppContext = Depends(get_context)) -> dict[str, Any]:
    """The latest execution, or ``{}`` when there is none yet (never a 404: clients rely on it)."""
    row = context.executions.latest_for_pipeline(pipeline_name)
    return ExecutionListItem.from_row(row).model_dump(mode="json") if row else {}
