"""What the API takes and returns, shaped as craft-api.md says (``XPublic``: one resource on the
wire; ``XCreate``/``XUpdate``/``XPut``: a request body), and the error body of every refusal.

Request bodies are modelled so that the OpenAPI document describes what the API accepts. Types
and simple bounds are checked here (a 400 naming the field); names, sizes, schedules, mappings
and what depends on another field are checked by the domain, with its own messages, and
described here (``Documented``) so that a request the document allows is one the API accepts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from rayline.domain.deployments import MAX_PARALLEL_EXECUTIONS, MAX_QUEUED_EXECUTIONS
from rayline.domain.environment import MAX_VALUE_LENGTH, RESERVED_PREFIXES
from rayline.domain.environment import RESERVED_NAMES as RESERVED_VARIABLES
from rayline.domain.io_types import DATA_TYPES
from rayline.domain.names import MAX_NAME_LENGTH
from rayline.domain.schedules import MAX_LENGTH as MAX_SCHEDULE_LENGTH
from rayline.domain.schedules import human_readable
from rayline.domain.tokens import MIN_CHOSEN_TOKEN_LENGTH
from rayline.services.deployments import RESERVED_NAMES, RESERVED_PATHS
from rayline.store.executions import MAX_LOG_LIMIT
from rayline.store.models import Deployment, Execution, ExecutionLog, Pipeline, Pod

# --- errors ------------------------------------------------------------------------------------


class ErrorPublic(BaseModel):
    """The body of every answer >= 400 (craft-api.md: ``{"message", "name", ...}``)."""

    model_config = ConfigDict(extra="allow")
    message: str = Field(description="What went wrong and what to do; names the field at fault.")
    name: str = Field(
        description="The kind of error: InvalidInput, NotFound, AlreadyExists, Conflict, "
        "Unauthorized, PayloadTooLarge, Unavailable, ExecutionFailed, InternalError..."
    )
    additional_data: dict[str, Any] | None = Field(None, description="Details, e.g. the execution concerned.")
    execution_id: str | None = Field(None, description="The execution an endpoint's failure is about.")
    error_id: str | None = Field(
        None, description="An unexpected failure (500): the platform's logs hold the traceback under this id."
    )


# --- what the domain checks, described ---------------------------------------------------------

JsonSchema = dict[str, Any]

# Names of pipelines, deployments and endpoint paths (rayline.domain.names), matched whole.
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
NAME_SCHEMA: JsonSchema = {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": MAX_NAME_LENGTH}
# Environment variable names (rayline.domain.environment): reserved names and prefixes excluded.
VARIABLE_NAME_PATTERN = (
    r"^(?!(" + "|".join(RESERVED_PREFIXES) + r")|(" + "|".join(RESERVED_VARIABLES) + r")$)[A-Z_][A-Z0-9_]*$"
)
VARIABLE_NAME_SCHEMA: JsonSchema = {
    "type": "string",
    "pattern": VARIABLE_NAME_PATTERN,
    "minLength": 1,
    "maxLength": 255,
}
# A cron schedule's shape: 5 fields, or a macro croniter expands to 5 (rayline.domain.schedules
# checks the rest: ranges, and dates that exist).
_MACROS = "|".join(
    "".join(f"[{c}{c.upper()}]" for c in macro)  # in any case, as croniter takes them
    for macro in ("yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly")
)
SCHEDULE_PATTERN = rf"^\s*(@({_MACROS})|[0-9A-Za-z*,/?#-]+(\s+[0-9A-Za-z*,/?#-]+){{4}})\s*$"
# Names of inputs and outputs on an endpoint: Python identifiers (ASCII ones here).
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A memory size (rayline.domain.deployments.parse_memory): a number and a unit, e.g. 512MiB, 2GiB.
# Its lower bound (16MiB) is the domain's alone: no pattern says it simply.
MEMORY_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*([bB]|[kKmMgG][iI]?[bB]?)?\s*$"

INPUT_SOURCE_SCHEMA: JsonSchema = {
    "type": "object",
    "description": "Where one input comes from (craft-ai-sdk's InputSource): exactly one of endpoint_input_name, "
    "constant_value, environment_variable_name, datastore_path (file inputs) or is_null=true; checked against the "
    "pipeline's declared inputs.",
    "properties": {
        "pipeline_input_name": {"type": "string"},
        "endpoint_input_name": {"type": ["string", "null"], "pattern": IDENTIFIER_PATTERN},
        "constant_value": {"description": "A value of the input's data_type."},
        "environment_variable_name": {"anyOf": [VARIABLE_NAME_SCHEMA, {"type": "null"}]},
        "is_null": {"type": ["boolean", "null"]},
        "is_required": {"type": ["boolean", "null"]},
        "default_value": {},
        "datastore_path": {
            "type": ["string", "null"],
            "description": "A file input read from this path of the data store when the execution starts.",
        },
    },
    "required": ["pipeline_input_name"],
}
OUTPUT_DESTINATION_SCHEMA: JsonSchema = {
    "type": "object",
    "description": "Where one output goes (craft-ai-sdk's OutputDestination): endpoint_output_name, "
    "datastore_path (file outputs) or is_null=true; checked against the pipeline's declared outputs.",
    "properties": {
        "pipeline_output_name": {"type": "string"},
        "endpoint_output_name": {"type": ["string", "null"], "pattern": IDENTIFIER_PATTERN},
        "is_null": {"type": ["boolean", "null"]},
        "datastore_path": {
            "type": ["string", "null"],
            "description": "A file output written to this path of the data store when the execution ends.",
        },
    },
    "required": ["pipeline_output_name"],
}
DECLARATION_SCHEMA: JsonSchema = {  # a pipeline's input or output, as get_pipeline shows it
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "data_type": {"enum": list(DATA_TYPES)},
        "description": {"type": ["string", "null"]},
        "is_required": {"type": "boolean"},
        "default_value": {},
    },
    "required": ["name", "data_type"],
}


def _whole_number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# A JSON Schema integer (3 or 3.0, not "3" nor true) in bounds. Field before the validator: so the
# document shows the bounds as minimum and maximum.
_WHOLE = BeforeValidator(_whole_number)
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
EpochMs = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS), _WHOLE]
LogLimit = Annotated[int, Field(ge=1, le=MAX_LOG_LIMIT), _WHOLE]
ParallelExecutions = Annotated[int, Field(ge=1, le=MAX_PARALLEL_EXECUTIONS), _WHOLE]
QueuedExecutions = Annotated[int, Field(ge=0, le=MAX_QUEUED_EXECUTIONS), _WHOLE]
Gpus = Annotated[int, Field(ge=0, le=2**31 - 1), _WHOLE]

# Fields the domain checks, with its own messages (WithJsonSchema: shown as the schema, checked
# here only as far as the type before it says).
MappingList = list[dict[str, Any]] | None  # a list of objects, or null: the rest is the domain's
InputsMapping = Annotated[MappingList, WithJsonSchema({"type": ["array", "null"], "items": INPUT_SOURCE_SCHEMA})]
OutputsMapping = Annotated[MappingList, WithJsonSchema({"type": ["array", "null"], "items": OUTPUT_DESTINATION_SCHEMA})]
PodCount = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "low_latency only; at most RAYLINE_MAX_PODS_PER_DEPLOYMENT (16 by default).",
        }
    ),
]
Seconds = Annotated[
    Any, WithJsonSchema({"type": ["number", "null"], "exclusiveMinimum": 0, "description": "low_latency only."})
]
DeploymentName = Annotated[
    Any,
    WithJsonSchema(
        {
            **NAME_SCHEMA,
            "not": {"enum": list(RESERVED_NAMES)},
            "description": "The deployment's name ('rayline' is the platform's).",
        }
    ),
]
EndpointPath = Annotated[
    Any,
    WithJsonSchema(
        {**NAME_SCHEMA, "not": {"enum": list(RESERVED_PATHS)}, "description": "Defaults to the deployment's name."}
    ),
]
Schedule = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SCHEDULE_PATTERN,
            "maxLength": MAX_SCHEDULE_LENGTH,
            "description": "A 5-field cron expression in UTC, e.g. '*/5 * * * *', or a macro such as '@hourly'.",
        }
    ),
]
NoSchedule = Annotated[Any, WithJsonSchema({"type": "null", "description": "Periodic deployments only."})]
EndpointOnly = Annotated[Any, WithJsonSchema({"type": "null", "description": "Endpoint deployments only."})]
EnvironmentVariables = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "object",
            "minProperties": 1,
            "propertyNames": VARIABLE_NAME_SCHEMA,
            "additionalProperties": {"type": "string", "maxLength": MAX_VALUE_LENGTH, "pattern": r"^[^\u0000]*$"},
            "description": "Name to value; names in capitals, digits and underscores, not reserved "
            f"({', '.join(RESERVED_PREFIXES)}..., {', '.join(RESERVED_VARIABLES)}).",
        }
    ),
]


# --- requests ----------------------------------------------------------------------------------


class RefreshRequest(BaseModel):
    """craft-ai-sdk's login: the SDK token in exchange for an access token."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"required": ["refresh_token"]})
    # Anything else than the SDK token is a 401, whatever its type.
    refresh_token: Annotated[Any, WithJsonSchema({"type": "string", "description": "The platform's SDK token."})] = None


class _DeploymentCreate(BaseModel):
    # Unknown fields are ignored (craft-ai-sdk versions send more or fewer of them).
    model_config = ConfigDict(strict=True, extra="allow")
    pipeline_name: str = Field(description="The pipeline to deploy (it must exist and be ready).")
    name: DeploymentName = None
    description: str | None = None
    mode: Literal["elastic", "low_latency"] | None = Field(
        None, description="elastic (the default): a fresh worker per execution; low_latency: a warm pod."
    )
    enable_parallel_executions: bool | None = Field(None, description="low_latency only.")
    max_parallel_executions_per_pod: ParallelExecutions | None = Field(
        None, description="Needs enable_parallel_executions=true."
    )
    max_queued_executions: QueuedExecutions | None = Field(
        None,
        description="low_latency: calls waiting for a slot (0: refuse when every slot is busy); elastic "
        "(at least 1): the most executions running at once.",
    )
    ram_request: str | None = Field(
        None,
        max_length=32,
        json_schema_extra={"pattern": MEMORY_PATTERN},
        description="low_latency only: at least 16MiB, e.g. '512MiB', '2GiB'.",
    )
    gpu_request: Gpus | None = Field(None, description="low_latency only: whole GPUs.")
    execution_timeout_s: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Seconds one execution may run (504 past it)."
    )
    inputs_mapping: InputsMapping = None
    outputs_mapping: OutputsMapping = None
    min_pods: PodCount = Field(
        None, description="Pods kept while idle (default 1); 0 lets the deployment go to standby."
    )
    max_pods: PodCount = Field(None, description="The most pods under load (default max(1, min_pods)).")
    scale_down_after_s: Seconds = Field(
        None, description="How long load stays low before a pod beyond min_pods goes (default 60)."
    )
    standby_after_s: Seconds = Field(
        None, description="With min_pods=0: how long without a call before the last pod goes (default 600)."
    )


# What the domain refuses in one mode or with one field but not another, said in the document:
# elastic deployments take no parallel executions, RAM or GPU, and at least 1 queued execution;
# max_parallel_executions_per_pod needs enable_parallel_executions=true.
_MODE_RULES: list[JsonSchema] = [
    {
        "if": {"properties": {"mode": {"const": "low_latency"}}, "required": ["mode"]},
        "else": {
            "properties": {
                "enable_parallel_executions": {"enum": [False, None]},
                "ram_request": {"type": "null"},
                "gpu_request": {"type": "null"},
                "max_queued_executions": {"type": ["integer", "null"], "minimum": 1},
                "min_pods": {"type": "null"},
                "max_pods": {"type": "null"},
                "scale_down_after_s": {"type": "null"},
                "standby_after_s": {"type": "null"},
            }
        },
    },
    {
        "if": {
            "properties": {"max_parallel_executions_per_pod": {"type": "integer"}},
            "required": ["max_parallel_executions_per_pod"],
        },
        "then": {
            "properties": {"enable_parallel_executions": {"const": True}},
            "required": ["enable_parallel_executions"],
        },
    },
]
# The endpoint path defaults to the name: then the name may not be a reserved path either.
_PATH_RULE: JsonSchema = {
    "if": {"properties": {"endpoint_url_path": {"type": "null"}}},
    "then": {"properties": {"name": {"not": {"enum": list(RESERVED_PATHS)}}}},
}
_ENDPOINT_EXTRA: JsonSchema = {"required": ["pipeline_name", "name"], "allOf": [*_MODE_RULES, _PATH_RULE]}
_PERIODIC_EXTRA: JsonSchema = {"required": ["pipeline_name", "name", "schedule"], "allOf": _MODE_RULES}


class EndpointDeploymentCreate(_DeploymentCreate):
    """``POST /endpoints``: a deployment called over HTTP at ``/endpoints/<endpoint_url_path>``."""

    model_config = ConfigDict(json_schema_extra=_ENDPOINT_EXTRA)
    endpoint_url_path: EndpointPath = None
    endpoint_token: str | None = Field(
        None,
        json_schema_extra={"minLength": MIN_CHOSEN_TOKEN_LENGTH},
        description="Chosen endpoint token (generated when left out).",
    )
    schedule: NoSchedule = None


class PeriodicDeploymentCreate(_DeploymentCreate):
    """``POST /periodic-deployment``: run on a cron ``schedule`` (UTC); every input and output
    must be mapped (a constant, an environment variable or null), as no one calls it."""

    model_config = ConfigDict(json_schema_extra=_PERIODIC_EXTRA)
    schedule: Schedule = None
    endpoint_url_path: EndpointOnly = None
    endpoint_token: EndpointOnly = None


class DeploymentUpdate(BaseModel):
    """``PATCH /deployments/<name>``: nothing else can change (a new deployment does)."""

    # Unknown fields reach the service, which refuses them by name.
    model_config = ConfigDict(strict=True, extra="allow", json_schema_extra={"additionalProperties": False})
    is_enabled: bool | None = Field(None, description="false: calls are refused (503) and a warm pod stops.")
    inputs_mapping: Annotated[
        MappingList,
        WithJsonSchema(
            {
                "type": ["array", "null"],
                "items": INPUT_SOURCE_SCHEMA,
                "description": "New constant_value of constant mappings.",
            }
        ),
    ] = None
    outputs_mapping: Annotated[
        MappingList, WithJsonSchema({"type": ["array", "null"], "maxItems": 0, "description": "Cannot be changed."})
    ] = None
    schedule: str | None = Field(
        None,
        max_length=MAX_SCHEDULE_LENGTH,
        json_schema_extra={"pattern": SCHEDULE_PATTERN},
        description="Periodic deployments: a new 5-field cron expression (UTC).",
    )
    min_pods: PodCount = Field(
        None, description="low_latency: pods kept while idle; 0 lets the deployment go to standby."
    )
    max_pods: PodCount = Field(None, description="The most pods under load.")
    scale_down_after_s: Seconds = Field(None, description="How long load stays low before a pod beyond min_pods goes.")
    standby_after_s: Seconds = Field(
        None, description="With min_pods=0: how long without a call before the last pod goes."
    )


class EnvironmentVariablesPut(BaseModel):
    # The service checks the names and values (an unknown field beside them is ignored).
    model_config = ConfigDict(extra="allow", json_schema_extra={"required": ["environment_variables"]})
    environment_variables: EnvironmentVariables = None


class PipelineParameters(BaseModel):
    pipeline_name: str
    function_path: str
    function_name: str
    description: str | None
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    container_config: dict[str, Any]


class PipelineCreationInfo(BaseModel):
    created_at: datetime
    status: str
    origin: str = "local"
    commit_id: str | None = None
    last_execution_id: str | None = None


class PipelinePublic(BaseModel):
    parameters: PipelineParameters
    creation_info: PipelineCreationInfo

    @classmethod
    def from_row(cls, row: Pipeline) -> PipelinePublic:
        inputs = [{k: v for k, v in spec.items() if v is not None} for spec in row.inputs]
        outputs = [{k: v for k, v in spec.items() if v is not None} for spec in row.outputs]
        return cls(
            parameters=PipelineParameters(
                pipeline_name=row.name,
                function_path=row.function_path,
                function_name=row.function_name,
                description=row.description,
                inputs=inputs,
                outputs=outputs,
                container_config=row.container_config,
            ),
            creation_info=PipelineCreationInfo(
                created_at=row.created_at, status=row.status, commit_id=row.package_sha256[:16]
            ),
        )


class PipelineListItem(BaseModel):
    pipeline_name: str
    created_at: datetime
    status: str

    @classmethod
    def from_row(cls, row: Pipeline) -> PipelineListItem:
        return cls(pipeline_name=row.name, created_at=row.created_at, status=row.status)


class ExecutionStarted(BaseModel):
    execution_id: str


class ExecutionListItem(BaseModel):
    execution_id: str
    status: str
    created_at: datetime
    start_date: datetime | None
    end_date: datetime | None
    pipeline_name: str
    deployment_name: str | None

    @classmethod
    def from_row(cls, row: Execution) -> ExecutionListItem:
        return cls(
            execution_id=row.execution_id,
            status=row.status,
            created_at=row.created_at,
            start_date=row.start_date,
            end_date=row.end_date,
            pipeline_name=row.pipeline_name,
            deployment_name=row.deployment_name,
        )


class ExecutionPublic(ExecutionListItem):
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    error: str | None

    @classmethod
    def from_row(cls, row: Execution) -> ExecutionPublic:
        return cls(
            **ExecutionListItem.from_row(row).model_dump(), inputs=row.inputs, outputs=row.outputs, error=row.error
        )


class ExecutionOutputs(BaseModel):
    outputs: list[dict[str, Any]]


class LogsQuery(BaseModel):
    """Bounds in epoch milliseconds, as craft-ai-sdk sends them."""

    model_config = ConfigDict(populate_by_name=True, strict=True)
    # Dates Python can represent (up to the year 9999): past them, a 400 naming the field.
    from_: EpochMs | None = Field(None, alias="from")
    to: EpochMs | None = None
    limit: LogLimit | None = None


class LogLine(BaseModel):
    timestamp: datetime
    message: str
    stream: str

    @classmethod
    def from_row(cls, row: ExecutionLog) -> LogLine:
        return cls(timestamp=row.timestamp, message=row.message, stream=row.stream)


class DeploymentListItem(BaseModel):
    name: str
    pipeline_name: str
    execution_rule: str
    mode: str
    is_enabled: bool
    status: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Deployment) -> DeploymentListItem:
        return cls(
            name=row.name,
            pipeline_name=row.pipeline_name,
            execution_rule=row.execution_rule,
            mode=row.mode,
            is_enabled=row.is_enabled,
            status=row.status,
            created_at=row.created_at,
        )


class PodPublic(BaseModel):
    pod_id: str
    status: str
    version: int
    running_executions: int  # whose function runs now (a timed-out thread included)
    waiting_executions: int  # waiting for a slot, in arrival order


class DeploymentVersion(BaseModel):
    """Which code and settings the pods should run: bumped by every update or reload."""

    number: int
    updated_at: datetime


class DeploymentPublic(BaseModel):
    name: str
    mode: str
    pipeline: dict[str, str]
    execution_rule: str
    status: str
    is_enabled: bool
    description: str | None
    inputs_mapping: list[dict[str, Any]]
    outputs_mapping: list[dict[str, Any]]
    enable_parallel_executions: bool
    max_parallel_executions_per_pod: int
    max_queued_executions: int | None
    ram_request: str | None
    gpu_request: int | None
    execution_timeout_s: float | None
    min_pods: int | None = None  # low_latency deployments only, as the four below
    max_pods: int | None = None
    scale_down_after_s: float | None = None
    standby_after_s: float | None = None
    created_at: datetime
    updated_at: datetime
    version: DeploymentVersion
    endpoint_url_path: str | None = None
    endpoint_token: str | None = None
    schedule: str | None = None
    human_readable_schedule: str | None = None
    next_run_at: datetime | None = None
    pods: list[PodPublic] | None = None

    @classmethod
    def from_row(cls, row: Deployment, endpoint_token: str | None, pods: list[Pod]) -> DeploymentPublic:
        return cls(
            name=row.name,
            mode=row.mode,
            pipeline={"name": row.pipeline_name},
            execution_rule=row.execution_rule,
            status=row.status,
            is_enabled=row.is_enabled,
            description=row.description,
            inputs_mapping=row.inputs_mapping,
            outputs_mapping=row.outputs_mapping,
            enable_parallel_executions=row.enable_parallel_executions,
            max_parallel_executions_per_pod=row.max_parallel_executions_per_pod,
            max_queued_executions=row.max_queued_executions,
            ram_request=row.ram_request,
            gpu_request=row.gpu_request,
            execution_timeout_s=row.execution_timeout_s,
            min_pods=row.min_pods,
            max_pods=row.max_pods,
            scale_down_after_s=row.scale_down_after_s,
            standby_after_s=row.standby_after_s,
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=DeploymentVersion(number=row.version, updated_at=row.version_updated_at),
            endpoint_url_path=row.endpoint_url_path,
            endpoint_token=endpoint_token,
            schedule=row.schedule,
            human_readable_schedule=human_readable(row.schedule) if row.schedule else None,
            next_run_at=row.next_run_at if row.is_enabled else None,
            pods=[
                PodPublic(
                    pod_id=p.pod_id,
                    status=p.status,
                    version=p.version,
                    running_executions=p.running_executions or 0,
                    waiting_executions=p.waiting_executions or 0,
                )
                for p in pods
            ]
            if row.mode == "low_latency"
            else None,
        )


# --- other answers -----------------------------------------------------------------------------


class HealthPublic(BaseModel):
    status: Literal["ok"]


class AccessTokenPublic(BaseModel):
    access_token: str = Field(description="A JWT valid RAYLINE_ACCESS_TOKEN_TTL_S, sent as 'Authorization: Bearer'.")


class ProjectInformation(BaseModel):
    included_folders: list[str] | None
    requirements_path: str | None


class DeploymentDeleted(BaseModel):
    name: str
    execution_rule: str


class PipelineName(BaseModel):
    name: str


class PipelineDeleted(BaseModel):
    pipeline: PipelineName
    deployments: list[DeploymentDeleted]


class ExecutionDeleted(BaseModel):
    execution_id: str


class NoExecution(BaseModel):
    """``{}``: no execution yet."""

    model_config = ConfigDict(extra="forbid")


class DeploymentLogLine(BaseModel):
    timestamp: str = Field(description="ISO 8601, UTC (e.g. 2026-01-31T12:00:00.123456Z).")
    message: str
    stream: str
    pod_id: str | None
    type: str


class EndpointTokenPublic(BaseModel):
    endpoint_token: str


class EnvironmentVariablesSet(BaseModel):
    environment_variables: list[str] = Field(description="The names set.")


class EnvironmentVariablePublic(BaseModel):
    name: str
    value: str


class EnvironmentVariableDeleted(BaseModel):
    name: str


class EndpointOutput(BaseModel):
    """An endpoint call that ended within the wait."""

    execution_id: str
    output: dict[str, Any] = Field(description="By endpoint output name.")


class EndpointStillRunning(BaseModel):
    """303: the execution runs on; its result is at ``Location``."""

    execution_id: str


class OutputValue(BaseModel):
    value: Any


class OutputUrl(BaseModel):
    url: str = Field(description="Where to fetch the file output (with the endpoint token).")


class EndpointResult(BaseModel):
    execution_id: str
    outputs: dict[str, OutputValue | OutputUrl]
