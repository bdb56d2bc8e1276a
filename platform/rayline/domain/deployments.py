"""Rules for deployments: rules, modes, resources, mappings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rayline.domain.names import validate_name
from rayline.domain.schedules import parse_schedule
from rayline.errors import InvalidInput

EXECUTION_RULES = ("endpoint", "periodic")
MODES = ("elastic", "low_latency")
DEFAULT_PARALLEL_EXECUTIONS = 6
MAX_PARALLEL_EXECUTIONS = 1000
DEFAULT_QUEUED_EXECUTIONS = 1000
# For an elastic deployment, max_queued_executions bounds its executions in flight (each is a
# process): one endpoint token must not take the whole cluster.
DEFAULT_ELASTIC_IN_FLIGHT = 100
MAX_QUEUED_EXECUTIONS = 100_000

# Deployment statuses (craft-api.md) and the pod statuses get_deployment reports.
CREATION_PENDING, UP, CREATION_FAILED = "creation_pending", "up", "creation_failed"
DOWN_RETRYING, STANDBY, DISABLED = "down_retrying", "standby", "disabled"
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


@dataclass
class DeploymentOptions:
    """Checked options of a new deployment."""

    execution_rule: str
    mode: str
    endpoint_url_path: str | None
    enable_parallel_executions: bool
    max_parallel_executions_per_pod: int
    max_queued_executions: int
    ram_request: str | None
    gpu_request: int | None
    execution_timeout_s: float | None
    schedule: str | None  # periodic deployments: a checked 5-field cron expression (UTC)


def check_options(name: str, body: dict[str, Any]) -> DeploymentOptions:
    rule = body.get("execution_rule", "endpoint")
    if rule not in EXECUTION_RULES:
        raise InvalidInput(f"execution_rule must be one of {', '.join(EXECUTION_RULES)}, not {rule!r}.")
    mode = body.get("mode") or "elastic"
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
    path = body.get("endpoint_url_path")
    if rule != "endpoint" and path is not None:
        raise InvalidInput("endpoint_url_path only goes with execution_rule='endpoint'.")
    if rule == "endpoint":
        path = validate_name("endpoint_url_path", path if path is not None else name)
    schedule = body.get("schedule")
    if rule == "periodic":
        if schedule is None:
            raise InvalidInput(
                "schedule is required for a periodic deployment: a 5-field cron expression in UTC, "
                "e.g. '0 * * * *' (every hour)."
            )
        schedule = parse_schedule(schedule)
        if body.get("endpoint_token") is not None:
            raise InvalidInput("endpoint_token only goes with execution_rule='endpoint'.")
    elif schedule is not None:
        raise InvalidInput("schedule only goes with execution_rule='periodic'.")

    parallel = bool(body.get("enable_parallel_executions") or False)
    max_parallel = body.get("max_parallel_executions_per_pod")
    if max_parallel is not None:
        if not parallel:
            raise InvalidInput("max_parallel_executions_per_pod needs enable_parallel_executions=True.")
        if (
            not isinstance(max_parallel, int)
            or isinstance(max_parallel, bool)
            or not 1 <= max_parallel <= MAX_PARALLEL_EXECUTIONS
        ):
            raise InvalidInput(
                f"max_parallel_executions_per_pod must be an integer from 1 to {MAX_PARALLEL_EXECUTIONS}."
            )
    max_parallel = (max_parallel or DEFAULT_PARALLEL_EXECUTIONS) if parallel else 1
    queued = body.get("max_queued_executions")
    low_latency = mode == "low_latency"
    if queued is not None and (
        not isinstance(queued, int)
        or isinstance(queued, bool)
        or not int(not low_latency) <= queued <= MAX_QUEUED_EXECUTIONS
    ):
        raise InvalidInput(
            f"max_queued_executions must be an integer from 0 (refuse a call when every slot is busy) to "
            f"{MAX_QUEUED_EXECUTIONS}."
            if low_latency
            else f"max_queued_executions must be an integer from 1 to {MAX_QUEUED_EXECUTIONS}: for an elastic "
            "deployment, the most executions it runs at once (each in its own process)."
        )

    ram, gpu = body.get("ram_request"), body.get("gpu_request")
    if not low_latency and (parallel or ram is not None or gpu is not None):
        raise InvalidInput("enable_parallel_executions, ram_request and gpu_request only go with mode='low_latency'.")
    if ram is not None:
        parse_memory(ram)
    if gpu is not None and (not isinstance(gpu, int) or isinstance(gpu, bool) or gpu < 0):
        raise InvalidInput("gpu_request must be a whole number of GPUs (0, 1, 2...).")

    timeout = body.get("execution_timeout_s")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise InvalidInput("execution_timeout_s must be a number of seconds greater than 0.")
    if queued is None:
        queued = DEFAULT_QUEUED_EXECUTIONS if low_latency else DEFAULT_ELASTIC_IN_FLIGHT
    return DeploymentOptions(rule, mode, path, parallel, max_parallel, queued, ram, gpu, timeout, schedule)


TIMED_OUT = "The execution exceeded execution_timeout_s="


def failure_for_caller(execution_id: str, status: str, error: str | None) -> str | None:
    """What an endpoint's caller is told of a failed execution: the user code's own error (its
    ``Failed`` message), but not the platform's (an ``Error``: pip's output, Ray's messages),
    which stays in the execution's record and logs for the SDK token's holder."""
    if status != "Error":
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
    credential: str
    route_prefix: str | None  # None: a periodic deployment, called by the scheduler only
    version: int
    outputs: list[dict[str, Any]] = field(default_factory=list)  # the pipeline's declared outputs
    inputs_mapping: list[dict[str, Any]] = field(default_factory=list)  # normalized (rayline.domain.mappings)
    outputs_mapping: list[dict[str, Any]] = field(default_factory=list)
    max_parallel_executions: int = 1
    max_queued_executions: int = DEFAULT_QUEUED_EXECUTIONS
    execution_timeout_s: float | None = None
    journal_dir: str = ""
    control_plane_app: str = "rayline"  # the Serve application pods send their records to
    max_file_bytes: int = 20 * 1024**2
