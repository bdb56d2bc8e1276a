from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.api.http_io import read_inputs
from rayline.api.schemas import (
    DECLARATION_SCHEMA,
    NAME_SCHEMA,
    ExecutionListItem,
    ExecutionStarted,
    NoExecution,
    PipelineDeleted,
    PipelineListItem,
    PipelinePublic,
    ProjectInformation,
)
from rayline.domain.forms import declarations, unflatten
from rayline.errors import InvalidInput
from rayline.services.executions import parse_json_field
from rayline.services.pipelines import PipelineCreate

router = APIRouter(tags=["pipelines"])

# The multipart form of create_pipeline, as craft-ai-sdk and RaylineSdk send it: nested fields
# flattened (``inputs[0][name]``, ``container_config[requirements_path]``), or JSON text.
_FIELD = {"type": "string"}
PIPELINE_FORM = {
    "type": "object",
    "properties": {
        "pipeline_name": NAME_SCHEMA,
        "function_path": {"type": "string", "pattern": r"\.py$", "description": "The file, in the folder."},
        "function_name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
        "description": _FIELD,
        "step_file": {
            "type": "string",
            "format": "binary",
            "contentMediaType": "application/gzip",
            "description": "The pipeline's folder as a tar.gz archive.",
        },
        "inputs": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "JSON list of declarations, or flattened fields inputs[0][name]=..., "
            "inputs[0][data_type]=...",
            "contentSchema": {"type": "array", "items": DECLARATION_SCHEMA},
        },
        "outputs": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "As inputs.",
            "contentSchema": {"type": "array", "items": DECLARATION_SCHEMA},
        },
    },
    "additionalProperties": _FIELD,
    "propertyNames": {"pattern": r"^[^\[\]]+(\[[^\[\]]*\])*$"},  # name, or name[key][key]...
    "required": ["pipeline_name", "function_path", "function_name", "step_file"],
}
# The inputs of an execution: a JSON object of input name to value, or a form (multipart with one
# file part per file input; other fields JSON-encoded, or plain text for a string).
INPUTS_BODY = {
    "application/json": {
        "schema": {"type": "object", "additionalProperties": True, "description": "Input name to value."}
    },
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "description": "One part per input; files as file parts.",
            "additionalProperties": {"type": "string", "format": "binary"},
        }
    },
}
# run_pipeline's form (craft-ai-sdk): the inputs and the mappings as JSON text.
RUN_FIELDS = {
    "json_inputs": {
        "type": "string",
        "contentMediaType": "application/json",
        "description": "JSON object of input name to value.",
    },
    "inputs_mapping": {
        "type": "string",
        "contentMediaType": "application/json",
        "description": "JSON list of input sources (constants, environment variables, null).",
    },
    "outputs_mapping": {
        "type": "string",
        "contentMediaType": "application/json",
        "description": "JSON list of output destinations.",
    },
}
RUN_BODY = {
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": RUN_FIELDS}},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": RUN_FIELDS,
            "additionalProperties": {"type": "string", "format": "binary", "description": "A file input."},
        }
    },
    "application/json": {
        "schema": {
            "type": "object",
            "additionalProperties": True,
            "properties": {
                "json_inputs": {"type": ["object", "null"]},
                "inputs_mapping": {"type": ["array", "null"]},
                "outputs_mapping": {"type": ["array", "null"]},
            },
            "description": "json_inputs and the mappings as JSON values; other fields are inputs too.",
        }
    },
}


@router.get("/project-information", response_model=ProjectInformation)
def project_information() -> dict[str, Any]:
    """Defaults craft-ai-sdk asks for before packing a folder: Rayline takes the whole folder."""
    return {"included_folders": None, "requirements_path": None}


@router.post(
    "/pipelines",
    status_code=201,
    response_model=PipelinePublic,
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": PIPELINE_FORM}}}},
    responses=error_responses(400, 409, 413, s409="A pipeline of this name exists."),
)
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
        pipeline_name=fields.get("pipeline_name", ""),
        function_path=fields.get("function_path", ""),
        function_name=fields.get("function_name", ""),
        description=fields.get("description"),
        inputs=declarations("inputs", fields.get("inputs")),
        outputs=declarations("outputs", fields.get("outputs")),
        container_config=container_config,
    )
    row = await run_in_threadpool(context.pipelines.create, params, archive)
    return PipelinePublic.from_row(row)


@router.get("/pipelines", response_model=list[PipelineListItem])
def list_pipelines(context: AppContext = Depends(get_context)) -> list[PipelineListItem]:
    return [PipelineListItem.from_row(row) for row in context.pipelines.list()]


@router.get("/pipelines/{pipeline_name}", response_model=PipelinePublic, responses=error_responses(400, 404))
def get_pipeline(
    pipeline_name: str, wait_for_completion: bool = False, context: AppContext = Depends(get_context)
) -> PipelinePublic:
    # Pipelines are ready as soon as they are stored, so there is nothing to wait for.
    return PipelinePublic.from_row(context.pipelines.get(pipeline_name))


@router.delete(
    "/pipelines/{pipeline_name}",
    response_model=PipelineDeleted,
    responses=error_responses(400, 404, 409, s409="Deployments use it: force_deployments_deletion=true."),
)
def delete_pipeline(
    pipeline_name: str, force_deployments_deletion: bool = False, context: AppContext = Depends(get_context)
) -> dict[str, Any]:
    return context.pipelines.delete(
        pipeline_name, lambda name: context.deployments.delete_for_pipeline(name, force_deployments_deletion)
    )


@router.post(
    "/pipelines/{pipeline_name}/run",
    response_model=ExecutionStarted,
    openapi_extra={"requestBody": {"content": RUN_BODY}},
    responses=error_responses(400, 404, 409, 413, s409="The pipeline is not ready."),
)
async def run_pipeline(
    pipeline_name: str, request: Request, context: AppContext = Depends(get_context)
) -> ExecutionStarted:
    """Start one execution. Form fields ``json_inputs``, ``inputs_mapping``, ``outputs_mapping``
    (JSON), and one file part per file input (multipart)."""
    fields = await read_inputs(request, context.settings.max_file_bytes)
    inputs = parse_json_field("json_inputs", fields.pop("json_inputs", None), {})
    inputs_mapping = parse_json_field("inputs_mapping", fields.pop("inputs_mapping", None), [])
    outputs_mapping = parse_json_field("outputs_mapping", fields.pop("outputs_mapping", None), [])
    if not isinstance(inputs, dict):
        raise InvalidInput("json_inputs must be a JSON object of input name to value.")
    for field, mapping in (("inputs_mapping", inputs_mapping), ("outputs_mapping", outputs_mapping)):
        if not isinstance(mapping, list):
            raise InvalidInput(f"{field} must be a JSON list of mappings.")
    inputs.update(fields)  # the file parts
    execution = await run_in_threadpool(
        context.executions.run_pipeline, pipeline_name, inputs, inputs_mapping, outputs_mapping
    )
    return ExecutionStarted(execution_id=execution.execution_id)


@router.get("/pipelines/{pipeline_name}/executions", response_model=list[ExecutionListItem])
def list_pipeline_executions(pipeline_name: str, context: AppContext = Depends(get_context)) -> list[ExecutionListItem]:
    return [ExecutionListItem.from_row(row) for row in context.executions.list_for_pipeline(pipeline_name)]


@router.get("/pipelines/{pipeline_name}/executions/latest", response_model=ExecutionListItem | NoExecution)
def latest_pipeline_execution(pipeline_name: str, context: AppContext = Depends(get_context)) -> dict[str, Any]:
    """The latest execution, or ``{}`` when there is none yet (never a 404: clients rely on it)."""
    row = context.executions.latest_for_pipeline(pipeline_name)
    return ExecutionListItem.from_row(row).model_dump(mode="json") if row else {}
