"""An elastic execution as a Ray task: it holds the execution's resources in Ray's scheduler
while a child forked from its worker's template runs it (``rayline.runtime.forks``).

Ray keeps the task's worker process (one per runtime environment, in Ray's own pool of idle
workers, bounded by Ray) for the next executions of that environment: each of them costs a
fork, not a new Ray worker. The task enforces ``execution_timeout_s`` itself, by stopping the
child's process group, streams the logs the child sends it to the control plane once the
execution has run for a second, and returns what is left with the result.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ray

from rayline.domain.deployments import timed_out_error
from rayline.domain.jobs import ExecutionJob
from rayline.domain.statuses import ExecutionStatus
from rayline.runtime.forks import TemplateGone, UnexpectedMessage, fork_server, receive, send
from rayline.runtime.log_capture import LogSink, Record
from rayline.runtime.worker import ChildRequest, ExecutionResult

if TYPE_CHECKING:  # imported on first use only, by _LateLogWriter
    from rayline.runtime.control_plane_link import ControlPlaneLink

# An execution still running after this long streams its logs to SQL, so they can be read live.
STREAM_LOGS_AFTER_S = 1.0
STOPPED = "; its process, and every process it started, were stopped."
# The most a child may send in one message (a file output is at most max_file_bytes).
MESSAGE_MARGIN_BYTES = 16 * 1024**2


class _ScratchRemoval:
    """Removes the scratch folders of ended executions, on one thread of the worker, off the
    answer's path (a folder may hold whatever the user's code wrote)."""

    def __init__(self) -> None:
        self._folders: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, folder: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rayline-scratch-removal", daemon=True)
                self._thread.start()
        self._folders.put(folder)

    def _run(self) -> None:
        while True:
            shutil.rmtree(self._folders.get(), ignore_errors=True)


_removals = _ScratchRemoval()


class _LateLogWriter:
    """Streams an execution's logs to the control plane; connects on first use only."""

    def __init__(self, job: ExecutionJob) -> None:
        self._job = job
        self._link: ControlPlaneLink | None = None

    def close(self) -> None:
        if self._link is not None:
            self._link.close()

    def __call__(self, batch: list[Record]) -> None:
        if not self._job.log_credential:
            raise RuntimeError("this execution has no credential to stream its logs; they come with its result")
        if self._link is None:
            from rayline.runtime.control_plane_link import ControlPlaneLink

            # Serve's client announces itself at INFO: not a line of the user's execution.
            logging.getLogger("ray.serve").setLevel(logging.WARNING)
            self._link = ControlPlaneLink(self._job.control_plane_app, self._job.log_credential, threads=1)
        self._link.call("append_execution_logs", self._job.execution_id, batch)


def _log_record(payload: Any) -> Record:
    timestamp, stream, message = payload
    if not isinstance(timestamp, datetime) or stream not in ("stdout", "stderr") or not isinstance(message, str):
        raise UnexpectedMessage("a child sent a log line that is not one")
    return timestamp, stream, message


def crash_error(wait_status: int) -> str:
    """Why a child that sent no result ended, from its wait status."""
    code = os.waitstatus_to_exitcode(wait_status)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        what = {
            "SIGSEGV": " (a segmentation fault)",
            "SIGKILL": " (out of memory, or killed)",
            "SIGABRT": " (aborted)",
        }.get(name, "")
        return f"The execution's process was killed by {name}{what} before it returned."
    return f"The execution's process exited with code {code} before it returned (os._exit, or a crash in native code)."


def run_in_child(job: ExecutionJob) -> ExecutionResult:
    """Run the execution in a child forked from this worker's template; its result, or the
    Error or Failed result of a child that crashed or ran past ``execution_timeout_s``."""
    started_at = datetime.now(UTC)
    writer = _LateLogWriter(job)
    sink = LogSink(writer, delay_s=STREAM_LOGS_AFTER_S)
    scratch = tempfile.mkdtemp(prefix=f"rayline-{job.execution_id}-")
    result: ExecutionResult | None = None
    failure: tuple[str, str] | None = None
    status = 0
    try:
        with fork_server().fork() as child:
            # The environment of this task (Ray sets e.g. CUDA_VISIBLE_DEVICES per task), not
            # the template's; no log credential: the child records nothing itself. Its user code
            # gets the API's URL and its execution's credential (a platform variable of the same
            # name, e.g. CRAFT_AI_ENVIRONMENT_URL, wins: the user chose it); the child's own data
            # store transfers use them from its job.
            environment = {**os.environ, **job.code_environment, **job.environment}
            request = ChildRequest(replace(job, log_credential=""), environment, scratch)
            deadline = time.monotonic() + job.timeout_s if job.timeout_s else None
            largest = job.max_file_bytes * max(1, len(job.outputs)) + MESSAGE_MARGIN_BYTES
            try:
                send(child.channel, request)
                while (message := receive(child.channel, deadline, largest)) is not None:
                    kind, payload = message
                    if kind == "result" and isinstance(payload, ExecutionResult):
                        result, child.finished = payload, True  # its last message: it exits by itself
                        break
                    sink.add_record(_log_record(payload))
            except TimeoutError:
                failure = (ExecutionStatus.FAILED, timed_out_error(job.timeout_s or 0, STOPPED))
            except Exception as error:  # noqa: BLE001 - whatever it sent, the child is stopped
                # Its channel broke (it crashed while being written to), or its user code wrote
                # to the channel: what it sends cannot be trusted any more.
                failure = (ExecutionStatus.ERROR, f"The execution's process could not be followed any more: {error}.")
            if result is None:
                child.kill()  # if it still runs (its channel closed, or it ran past its timeout)
                status = child.wait()
                died_by_itself = os.WIFSIGNALED(status) and os.WTERMSIG(status) != signal.SIGKILL
                if failure is not None and failure[0] == ExecutionStatus.ERROR and died_by_itself:
                    failure = None  # e.g. a segmentation fault while it was sending: its signal says more
    except TemplateGone as error:
        failure = (ExecutionStatus.ERROR, f"The execution could not run to its end: {error}.")
    finally:
        logs = sink.close()
        writer.close()
        _removals.put(scratch)
    if result is not None and failure is None:
        result.logs = logs
        return result
    status_name, message = failure or (ExecutionStatus.ERROR, crash_error(status))
    return ExecutionResult(
        status=status_name, started_at=started_at, error=message, logs=[*logs, (datetime.now(UTC), "stderr", message)]
    )


def _task(function: Any, runtime_env: dict[str, Any], resources: dict[str, float], num_cpus: float) -> Any:
    options: dict[str, Any] = {"num_cpus": num_cpus, "max_retries": 0, "runtime_env": runtime_env}
    if resources:
        options["resources"] = resources
    return ray.remote(**options)(function)


def execution_task(runtime_env: dict[str, Any], resources: dict[str, float]) -> Any:
    """The Ray task of the executions of one runtime environment: it holds one CPU (and the
    custom ``resources``) while its child runs. The environment is given here, once, rather
    than to each call's ``.options()``, where Ray would parse and serialize it again (most of a
    millisecond of the control plane's CPU per execution)."""
    return _task(run_in_child, runtime_env, resources, num_cpus=1)


def preparation_task(runtime_env: dict[str, Any], resources: dict[str, float]) -> Any:
    """A task that starts a worker of this runtime environment and its template, ahead of its
    executions; it holds no CPU (Ray keeps the worker in its pool once it returns)."""
    return _task(_start_template, runtime_env, resources, num_cpus=0)


def _start_template() -> int:
    return fork_server().start()
