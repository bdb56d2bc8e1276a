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

import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from rayline.domain.files import FileValue, materialize
from rayline.domain.jobs import ExecutionJob
from rayline.domain.results import OutputContract, failure_text
from rayline.domain.statuses import ExecutionStatus
from rayline.runtime.log_capture import LogSink, Record, capture_output, follow_executions_into_threads
from rayline.runtime.user_code import call_function, load_function

if TYPE_CHECKING:  # imported on first use only, by _LateLogWriter
    from rayline.runtime.control_plane_link import ControlPlaneLink

# An execution still running after this long streams its logs to SQL, so they can be read live.
STREAM_LOGS_AFTER_S = 1.0


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
    contract = OutputContract.of(job.outputs, job.outputs_mapping, job.max_file_bytes)
    settled, error = None, None
    try:
        with scratch_copy(Path.cwd(), job.execution_id) as workdir, capture_output(sink, job.execution_id):
            try:
                inputs = materialize(job.inputs, workdir.parent / "inputs")  # removed with the scratch copy
                function = load_function(workdir, job.function_path, job.function_name)
                settled = contract.settle(call_function(function, inputs))
            except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything, SystemExit too
                traceback.print_exc()
                error = failure_text(exc)
    finally:
        logs = sink.close()
    return ExecutionResult(
        status=ExecutionStatus.SUCCEEDED if settled is not None else ExecutionStatus.FAILED,
        started_at=started_at,
        outputs=settled.records if settled is not None else None,
        error=error,
        logs=logs,
        files=settled.files if settled is not None else {},
    )
