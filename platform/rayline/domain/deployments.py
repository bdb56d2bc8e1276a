"""Rules for deployments: rules, modes, resources, mappings."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from rayline.domain.names import validate_name
from rayline.domain.schedules import parse_schedule
from rayline.domain.statuses import DeploymentStatus, ExecutionRule, ExecutionStatus, Mode
from rayline.errors import InvalidInput

EXECUTION_RULES = tuple(ExecutionRule)
MODES = tuple(Mode)
DEFAULT_PARALLEL_EXECUTIONS = 6
MAX_PARALLEL_EXECUTIONS = 1000
DEFAULT_QUEUED_EXECUTIONS = 1000
# For an elastic deployment, max_queued_executions bounds its executions in flight (each is a
# process): one endpoint token must not take the whole cluster.
DEFAULT_ELASTIC_IN_FLIGHT = 100
MAX_QUEUED_EXECUTIONS = 100_000

# Deployment statuses (craft-api.md) and the pod statuses get_deployment reports.
CREATION_PENDING, UP, CREATION_FAILED = (
    DeploymentStatus.CREATION_PENDING,
    DeploymentStatus.UP,
    DeploymentStatus.CREATION_FAILED,
)
DOWN_RETRYING, STANDBY, DISABLED = DeploymentStatus.DOWN_RETRYING, DeploymentStatus.STANDBY, DeploymentStatus.DISABLED
FINAL_STATUSES = (UP, CREATION_FAILED, DISABLED, STANDBY)

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_memory(value: str) -> int:
    """'512MiB', '1GiB', '1.5Gi', '800MB' -> bytes."""
    match = _SIZE.match(str(value))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise InvalidInput(f"ram_request {value!r} is not a size; write it like '512MiB' or '2GiB'.")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 16 * 1024**2:
        raise InvalidInput(f"ram_request {value!r} is below 16MiB; a Python process needs more.")
    return size


_LOW_LATENCY_ONLY = "enable_parallel_executions, ram_request and gpu_request only go with mode='low_latency'."
_QUEUED_LOW_LATENCY = (
    "max_queued_executions must be an integer from 0 (refuse a call when every slot is busy) to "
    f"{MAX_QUEUED_EXECUTIONS}."
)
_QUEUED_ELASTIC = (
    f"max_queued_executions must be an integer from 1 to {MAX_QUEUED_EXECUTIONS}: for an elastic deployment, "
    "the most executions it runs at once (each in its own process)."
)


class DeploymentOptions(BaseModel):
    """Checked options of a new deployment; ``check_options`` makes one from a request's body.

    A field's rules are in its validator, and the fields are declared in the order the rules are
    checked: a rule that ties a field to others reads those declared above it (``info.data``), and
    the message of the first field that fails is the one reported. A field whose default depends
    on others is validated when left out too (``validate_default``; its declared default, None,
    means "left out"). The validators are ``plain``: they check types by hand (a bool is no
    integer here) and convert nothing (5 stays 5).

    A new option: a field here (in its place in that order) and its validator. A validator
    refuses with ``ValueError(message)``, and with nothing else (pydantic lets other exceptions
    through at once): reading ``info.data`` with ``.get`` and the rules of a helper raising
    InvalidInput through ``_checked``. ``_low_latency_only`` and ``_is_integer`` are the usual
    checks.
    """

    # The body also holds the name, the pipeline, the mappings...: not options, ignored here.
    model_config = ConfigDict(frozen=True, extra="ignore")

    execution_rule: str = "endpoint"
    mode: str = "elastic"
    endpoint_url_path: str | None = Field(None, validate_default=True)  # endpoints: the name by default
    schedule: str | None = Field(None, validate_default=True)  # periodic: a checked 5-field cron expression (UTC)
    # Checked (a periodic deployment takes none), never kept: the service reads it from the body.
    endpoint_token: None = Field(None, exclude=True, repr=False)
    enable_parallel_executions: bool = False
    max_parallel_executions_per_pod: int = Field(None, validate_default=True)
    max_queued_executions: int = Field(None, validate_default=True)
    ram_request: str | None = Field(None, validate_default=True)
    gpu_request: int | None = None
    execution_timeout_s: float | None = None

    @field_validator("execution_rule", mode="plain")
    @classmethod
    def _execution_rule(cls, value: Any) -> Any:
        if value not in EXECUTION_RULES:
            raise ValueError(f"execution_rule must be one of {', '.join(EXECUTION_RULES)}, not {value!r}.")
        return value

    @field_validator("mode", mode="plain")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        value = value or "elastic"  # null or "" too
        if value not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {value!r}.")
        return value

    @field_validator("endpoint_url_path", mode="plain")
    @classmethod
    def _endpoint_url_path(cls, value: Any, info: ValidationInfo) -> str | None:
        if info.data.get("execution_rule") != "endpoint":
            if value is not None:
                raise ValueError("endpoint_url_path only goes with execution_rule='endpoint'.")
            return None
        return _checked(validate_name, "endpoint_url_path", value if value is not None else _name(info))

    @field_validator("schedule", mode="plain")
    @classmethod
    def _schedule(cls, value: Any, info: ValidationInfo) -> str | None:
        if info.data.get("execution_rule") != "periodic":
            if value is not None:
                raise ValueError("schedule only goes with execution_rule='periodic'.")
            return None
        if value is None:
            raise ValueError(
                "schedule is required for a periodic deployment: a 5-field cron expression in UTC, "
                "e.g. '0 * * * *' (every hour)."
            )
        return _checked(parse_schedule, value)

    @field_validator("endpoint_token", mode="plain")
    @classmethod
    def _endpoint_token(cls, value: Any, info: ValidationInfo) -> None:
        if value is not None and info.data.get("execution_rule") == "periodic":
            raise ValueError("endpoint_token only goes with execution_rule='endpoint'.")

    @field_validator("enable_parallel_executions", mode="plain")
    @classmethod
    def _enable_parallel_executions(cls, value: Any) -> bool:
        return bool(value)  # any true value (its mode rule is with ram_request's)

    @field_validator("max_parallel_executions_per_pod", mode="plain")
    @classmethod
    def _max_parallel_executions_per_pod(cls, value: Any, info: ValidationInfo) -> int:
        parallel = info.data.get("enable_parallel_executions")
        if value is None:
            return DEFAULT_PARALLEL_EXECUTIONS if parallel else 1
        if not parallel:
            raise ValueError("max_parallel_executions_per_pod needs enable_parallel_executions=True.")
        if not _is_integer(value, 1, MAX_PARALLEL_EXECUTIONS):
            raise ValueError(f"max_parallel_executions_per_pod must be an integer from 1 to {MAX_PARALLEL_EXECUTIONS}.")
        return value

    @field_validator("max_queued_executions", mode="plain")
    @classmethod
    def _max_queued_executions(cls, value: Any, info: ValidationInfo) -> int:
        low_latency = info.data.get("mode") == "low_latency"
        if value is None:
            return DEFAULT_QUEUED_EXECUTIONS if low_latency else DEFAULT_ELASTIC_IN_FLIGHT
        if not _is_integer(value, 0 if low_latency else 1, MAX_QUEUED_EXECUTIONS):
            raise ValueError(_QUEUED_LOW_LATENCY if low_latency else _QUEUED_ELASTIC)
        return value

    @field_validator("ram_request", mode="plain")
    @classmethod
    def _ram_request(cls, value: Any, info: ValidationInfo) -> Any:
        # enable_parallel_executions's mode rule is checked here: after max_queued_executions's rules.
        _low_latency_only(info, bool(info.data.get("enable_parallel_executions")) or value is not None)
        if value is not None:
            _checked(parse_memory, value)
        return value  # as given: what Ray is asked for

    @field_validator("gpu_request", mode="plain")
    @classmethod
    def _gpu_request(cls, value: Any, info: ValidationInfo) -> int | None:
        _low_latency_only(info, value is not None)
        if value is not None and not _is_integer(value, 0):
            raise ValueError("gpu_request must be a whole number of GPUs (0, 1, 2...).")
        return value

    @field_validator("execution_timeout_s", mode="plain")
    @classmethod
    def _execution_timeout_s(cls, value: Any) -> Any:
        # As before, NaN passes (NaN <= 0 is false); the API's schema refuses it.
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
            raise ValueError("execution_timeout_s must be a number of seconds greater than 0.")
        return value


def _name(info: ValidationInfo) -> Any:
    """The deployment's name, which check_options passes as the validation's context."""
    return (info.context or {}).get("name")


def _is_integer(value: Any, low: int, high: int | None = None) -> bool:
    """An int from low to high; not a bool (JSON's true is no 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value and (high is None or value <= high)


def _low_latency_only(info: ValidationInfo, given: bool) -> None:
    if given and info.data.get("mode") != "low_latency":
        raise ValueError(_LOW_LATENCY_ONLY)


_T = TypeVar("_T")


def _checked(check: Callable[..., _T], *args: Any) -> _T:
    """``check(*args)``, its InvalidInput as a ValueError: pydantic records a ValueError as the
    field's error (check_options reports the first), and lets any other exception through."""
    try:
        return check(*args)
    except InvalidInput as error:
        raise ValueError(error.message) from error


def check_options(name: str, body: dict[str, Any]) -> DeploymentOptions:
    """A new deployment's options, checked; InvalidInput says what is wrong (the first rule that
    fails, in DeploymentOptions's order)."""
    try:
        return DeploymentOptions.model_validate(body, context={"name": name})
    except ValidationError as error:
        first = error.errors()[0]
        cause = first.get("ctx", {}).get("error")
        raise InvalidInput(str(cause) if isinstance(cause, ValueError) else first["msg"]) from None


TIMED_OUT = "The execution exceeded execution_timeout_s="


def failure_for_caller(execution_id: str, status: str, error: str | None) -> str | None:
    """What an endpoint's caller is told of a failed execution: the user code's own error (its
    ``Failed`` message), but not the platform's (an ``Error``: pip's output, Ray's messages),
    which stays in the execution's record and logs for the SDK token's holder."""
    if status != ExecutionStatus.ERROR:
        return error
    return (
        f"Execution {execution_id} could not run because of a platform failure; "
        f"get_pipeline_execution({execution_id!r}) and its logs say why."
    )


def timed_out_error(timeout_s: float, what_happened: str) -> str:
    """The error of an execution that ran past its deployment's ``execution_timeout_s``."""
    return f"{TIMED_OUT}{timeout_s:g} s{what_happened}"


def is_timed_out(error: str | None) -> bool:
    return bool(error and error.startswith(TIMED_OUT))


@dataclass
class ReplicaConfig:
    """What a low-latency replica is started with (pickled to it by Serve)."""

    deployment_name: str
    pipeline_name: str
    function_path: str
    function_name: str
    # Lets its pods record this deployment's executions through the control plane, and nothing
    # else: a pod runs user code, so it holds no database URL, key or token (services/pod_gateway).
    credential: str = field(repr=False)
    route_prefix: str | None  # None: a periodic deployment, called by the scheduler only
    version: int
    # What the pods set in os.environ for their user code: the API's URL and a credential that only
    # records this deployment's executions' metrics and uses the data store (code_credentials).
    code_environment: dict[str, str] = field(default_factory=dict, repr=False)
    outputs: list[dict[str, Any]] = field(default_factory=list)  # the pipeline's declared outputs
    inputs_mapping: list[dict[str, Any]] = field(default_factory=list)  # normalized (rayline.domain.mappings)
    outputs_mapping: list[dict[str, Any]] = field(default_factory=list)
    max_parallel_executions: int = 1
    max_queued_executions: int = DEFAULT_QUEUED_EXECUTIONS
    execution_timeout_s: float | None = None
    journal_dir: str = ""
    # Answer each call only once its records are committed, on every node (RAYLINE_REPLY_AFTER_
    # COMMIT=always); by default only off the control plane's node, where a journal dies with it.
    reply_after_commit: bool = False
    control_plane_app: str = "rayline"  # the Serve application pods send their records to
    # The function is a plain `def` (known from its source at the pipeline's creation): its code
    # only ever runs in the pods' execution threads, so Serve may run the pod's own side of each
    # call on the replica's main event loop (serve_apps.low_latency.build).
    plain_def: bool = False
    max_file_bytes: int = 20 * 1024**2
