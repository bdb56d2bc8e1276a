"""What runs inside the forked child of an elastic execution (``rayline.runtime.forks``).

The child is a process that never ran anything else: forked from a template that imported this
module and never any user code. It runs the user's code in a private scratch copy of the
pipeline's files (Ray extracts a package once per node and shares that folder, so files one
execution writes must never be seen by the next), sends every line it prints to its worker as
it is printed (so a child that crashes, or is stopped, keeps its logs up to that point), and
sends its result (status, outputs, file outputs) at the end. It holds no database URL, platform
key nor credential: its worker (``rayline.runtime.elastic_task``) records through the control
plane. This module stays free of Ray: the child is not a Ray worker.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rayline.domain.files import FileValue, materialize
from rayline.domain.jobs import ExecutionJob
from rayline.domain.results import OutputContract, failure_text
from rayline.domain.statuses import ExecutionStatus
from rayline.runtime.data_store_files import fetch_inputs, store_outputs
from rayline.runtime.forks import receive, send
from rayline.runtime.log_capture import (
    Lines,
    Record,
    capture_descriptors,
    capture_output,
    follow_executions_into_threads,
)
from rayline.runtime.user_code import call_function, load_function


@dataclass
class ExecutionResult:
    status: str
    started_at: datetime
    outputs: list[dict[str, Any]] | None = None
    error: str | None = None
    logs: list[Record] = field(default_factory=list)  # what was not streamed to SQL yet
    files: dict[str, FileValue] = field(default_factory=dict)  # file outputs, by pipeline output name


@dataclass
class ChildRequest:
    """What a worker sends its child: the execution, with no credential in it."""

    job: ExecutionJob
    environment: dict[str, str]  # the whole of os.environ for the execution (the worker's, the platform's)
    scratch: str  # an empty folder of the worker's, removed by it once the child has ended


@contextmanager
def scratch_copy(source: Path, scratch: Path) -> Iterator[Path]:
    """A private copy of the pipeline's files, under ``scratch``, as the working directory."""
    workdir = scratch / "pipeline"
    shutil.copytree(source, workdir, symlinks=True)
    previous_cwd, previous_path = os.getcwd(), list(sys.path)
    os.chdir(workdir)
    try:
        yield workdir
    finally:
        os.chdir(previous_cwd)
        sys.path[:] = previous_path


class _ToWorker:
    """Sends each line to the worker at once, from any thread of the child, then the result,
    its last message (what is printed after it, by a thread still running, is dropped)."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel, self._lock = channel, threading.Lock()
        self._ended = False

    def add(self, stream: str, message: str) -> None:
        with self._lock, suppress(OSError):  # a worker gone: the child is being stopped
            if not self._ended:
                send(self._channel, ("log", (datetime.now(UTC), stream, message)))

    def end(self, result: ExecutionResult) -> None:
        with self._lock:
            self._ended = True
            try:
                # As plain JSON values (what the record keeps): the worker rebuilds nothing else,
                # e.g. no NumPy scalar in an array output.
                if result.outputs is not None:
                    result.outputs = json.loads(json.dumps(result.outputs))
                send(self._channel, ("result", result))
            except (TypeError, ValueError, pickle.PicklingError, AttributeError) as error:
                failed = ExecutionResult(ExecutionStatus.FAILED, result.started_at, error=failure_text(error))
                send(self._channel, ("result", failed))


def execute(
    job: ExecutionJob,
    scratch: Path,
    log: Lines,
    load: Callable[..., Any] = load_function,
    package: Path | None = None,
) -> ExecutionResult:
    """Run one execution in this process, in a copy of ``package`` (the working directory, where
    Ray extracted the pipeline's package); what it prints goes to ``log``."""
    started_at = datetime.now(UTC)
    contract = OutputContract.of(job.outputs, job.outputs_mapping, job.max_file_bytes)
    settled, error = None, None
    with (
        scratch_copy(package or Path.cwd(), scratch) as workdir,
        capture_descriptors(log.add) as originals,
        capture_output(log, job.execution_id, originals),
    ):
        try:
            inputs = materialize(fetch_inputs(job.inputs, job.max_file_bytes, job.code_environment), scratch / "inputs")
            function = load(workdir, job.function_path, job.function_name)
            returned = contract.settle(call_function(function, inputs))
            store_outputs(returned.to_data_store, job.code_environment)  # its failure fails the execution
            settled = returned
        except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything, SystemExit too
            traceback.print_exc()
            error = failure_text(exc)
    return ExecutionResult(
        status=ExecutionStatus.SUCCEEDED if settled is not None else ExecutionStatus.FAILED,
        started_at=started_at,
        outputs=settled.records if settled is not None else None,
        error=error,
        files=settled.files if settled is not None else {},
    )


def prepare_template() -> None:
    """What every child needs, done once in the template (which runs no user code)."""
    follow_executions_into_threads()  # current_execution_id() in the user's threads too
    sys.dont_write_bytecode = True  # a child's compiled files would be removed with it


class _Nowhere:
    def add(self, stream: str, message: str) -> None:
        pass


def warm_up() -> None:
    """Run Rayline's side of an execution once, on a function of its own (``dict``), in a child
    waiting for its execution. After a fork, the first write to each page of memory copies it
    (hundreds of pages for an execution, a few microseconds each): paid here, while the child
    waits, instead of by the call it is given. Leaves nothing behind: no module is imported, the
    folder and the thread it uses are gone, the working directory is restored."""
    job = ExecutionJob("warm-up", "", "", inputs={"y": 1}, outputs=[{"name": "y", "data_type": "number"}])
    scratch = Path(tempfile.mkdtemp(prefix="rayline-warm-up-"))
    try:
        (scratch / "package").mkdir()  # an empty package: the pipeline's files are copied once, for its execution
        result = execute(job, scratch / "run", _Nowhere(), load=lambda *_: dict, package=scratch / "package")
        pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_child(channel: socket.socket) -> None:
    """The forked child's whole life: its execution, then its result to the worker; never returns."""
    warm_up()
    request: ChildRequest | None = receive(channel, trusted=True)  # from the worker
    if request is None:  # the worker went away first
        os._exit(0)
    # Only what differs (a copy of the worker's environment, most of it unchanged).
    for name in set(os.environ) - set(request.environment):
        del os.environ[name]
    for name, value in request.environment.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
    to_worker = _ToWorker(channel)
    to_worker.end(execute(request.job, Path(request.scratch), to_worker))
    os._exit(0)
