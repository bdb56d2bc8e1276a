"""What runs inside the fresh worker process of an elastic execution.

The worker runs the user's code in a private scratch copy of the pipeline's files (Ray extracts
a package once per node and shares that folder, so files one execution writes must never be seen
by the next) and returns its result (status, outputs, logs) to the control plane, which records
it. It holds no database URL nor any platform key: an execution that runs long enough streams its
logs to the control plane while it runs, with a credential that only allows appending to its own
logs (``rayline.services.pod_gateway``). A fresh process per execution pays for every import, so
Serve's client is imported only then.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from rayline.domain.files import FileValue, materialize
from rayline.domain.io_types import OutputSpec, check_outputs
from rayline.domain.mappings import kept_files, place_outputs
from rayline.runtime.log_capture import LogSink, Record, capture_output, follow_executions_into_threads

if TYPE_CHECKING:  # imported on first use only, by _LateLogWriter
    from rayline.runtime.control_plane_link import ControlPlaneLink

SUCCEEDED, FAILED = "Succeeded", "Failed"
# An execution still running after this long streams its logs to SQL, so they can be read live.
STREAM_LOGS_AFTER_S = 1.0


@dataclass
class ExecutionJob:
    """Everything a worker needs, pickled to it by Ray."""

    execution_id: str
    function_path: str
    function_name: str
    inputs: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    outputs_mapping: list[dict[str, Any]] = field(default_factory=list)  # normalized (rayline.domain.mappings)
    timeout_s: float | None = None  # enforced by the runner, which stops the worker past it
    environment: dict[str, str] = field(default_factory=dict)  # the platform's environment variables
    max_file_bytes: int = 50 * 1024**2  # the largest file output
    log_credential: str = ""  # appends to this execution's logs only, until it ends (set by the runner)
    control_plane_app: str = "rayline"


@contextmanager
def scratch_copy(source: Path, execution_id: str) -> Iterator[Path]:
    """A private copy of the pipeline's files as the working directory, removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix=f"rayline-{execution_id}-"))
    workdir = scratch / "pipeline"
    shutil.copytree(source, workdir, symlinks=True)
    previous_cwd, previous_path = os.getcwd(), list(sys.path)
    os.chdir(workdir)
    try:
        yield workdir
    finally:
        os.chdir(previous_cwd)
        sys.path[:] = previous_path
        shutil.rmtree(scratch, ignore_errors=True)


def load_function(workdir: Path, function_path: str, function_name: str) -> Callable[..., Any]:
    """Import the pipeline's file as a module (a dotted import when its path allows one, so that
    relative imports work) with the pipeline folder and the file's folder on ``sys.path``."""
    path = workdir / function_path
    sys.path[:0] = [str(path.parent), str(workdir)]
    parts = Path(function_path).with_suffix("").parts
    # A path whose top module is already imported must not resolve to that module.
    if all(part.isidentifier() for part in parts) and parts[0] not in sys.modules:
        module = importlib.import_module(".".join(parts))
    else:
        spec = importlib.util.spec_from_file_location("rayline_pipeline", path)
        if spec is None or spec.loader is None:  # never for a .py file, which pipelines are
            raise ImportError(f"{function_path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise AttributeError(f"{function_path} defines no callable named {function_name!r}")
    return function


def call_kwargs(function: Callable[..., Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as keyword arguments; an optional input that was not given gets the function's
    own default, or None when the function has none."""
    kwargs = dict(inputs)
    parameters: Mapping[str, inspect.Parameter]
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = {}
    for name, parameter in parameters.items():
        if (
            name not in kwargs
            and parameter.default is inspect.Parameter.empty
            and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ):
            kwargs[name] = None
    return kwargs


def call_function(function: Callable[..., Any], inputs: dict[str, Any]) -> Any:
    """Call the function in this process (an elastic worker), running a coroutine to its end."""
    result = function(**call_kwargs(function, inputs))
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


@dataclass
class ExecutionResult:
    status: str
    started_at: datetime
    outputs: list[dict[str, Any]] | None = None
    error: str | None = None
    logs: list[Record] = field(default_factory=list)  # what was not streamed to SQL yet
    files: dict[str, FileValue] = field(default_factory=dict)  # file outputs, by pipeline output name


class _LateLogWriter:
    """Streams an execution's logs to the control plane; connects on first use only."""

    def __init__(self, job: ExecutionJob) -> None:
        self._job = job
        self._link: ControlPlaneLink | None = None

    def __call__(self, batch: list[Record]) -> None:
        if not self._job.log_credential:
            raise RuntimeError("this execution has no credential to stream its logs; they come with its result")
        if self._link is None:
            import logging

            from rayline.runtime.control_plane_link import ControlPlaneLink

            # Serve's client announces itself at INFO: not a line of the user's execution.
            logging.getLogger("ray.serve").setLevel(logging.WARNING)

            self._link = ControlPlaneLink(self._job.control_plane_app, self._job.log_credential, threads=1)
        self._link.call("append_execution_logs", self._job.execution_id, batch)


@ray.remote(max_calls=1, num_cpus=1, max_retries=0)
def run_execution(job: ExecutionJob) -> ExecutionResult:
    """An execution as a task: in a fresh process that Ray ends after it (``max_calls=1``)."""
    return execute(job)


def execute(job: ExecutionJob) -> ExecutionResult:
    """Run one execution; the caller records the result."""
    started_at = datetime.now(UTC)
    follow_executions_into_threads()  # current_execution_id() in the user's threads too
    os.environ.update(job.environment)  # this process serves no other execution
    sink = LogSink(_LateLogWriter(job), delay_s=STREAM_LOGS_AFTER_S)
    specs = [OutputSpec(**spec) for spec in job.outputs]
    outputs, error, files = None, None, {}
    try:
        with scratch_copy(Path.cwd(), job.execution_id) as workdir, capture_output(sink, job.execution_id):
            try:
                inputs = materialize(job.inputs, workdir.parent / "inputs")  # removed with the scratch copy
                function = load_function(workdir, job.function_path, job.function_name)
                values = check_outputs(specs, call_function(function, inputs), job.max_file_bytes)
                _, outputs = place_outputs(job.outputs_mapping, values)
                files = kept_files(outputs, values)
            except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything, SystemExit too
                traceback.print_exc()
                error = f"{type(exc).__name__}: {exc}. The traceback is in the execution's logs."
    finally:
        logs = sink.close()
    return ExecutionResult(
        status=SUCCEEDED if error is None else FAILED,
        started_at=started_at,
        outputs=outputs,
        error=error,
        logs=logs,
        files=files,
    )
