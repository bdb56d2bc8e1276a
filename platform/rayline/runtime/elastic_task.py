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
from rayline.runtime.forks import TemplateGone, fork_server, receive, send
from rayline.runtime.log_capture import LogSink, Record
from rayline.runtime.worker import ChildRequest, ExecutionResult

if TYPE_CHECKING:  # imported on first use only, by _LateLogWriter
    from rayline.runtime.control_plane_link import ControlPlaneLink

# An execution still running after this long streams its logs to SQL, so they can be read live.
STREAM_LOGS_AFTER_S = 1.0
STOPPED = "; its process, and every process it started, were stopped."
# The scratch folders of ended executions, removed by one thread of this worker.
_removals: queue.SimpleQueue[str] = queue.SimpleQueue()


def _remove_scratch_folders() -> None:
    while True:
        shutil.rmtree(_removals.get(), ignore_errors=True)


threading.Thread(target=_remove_scratch_folders, name="rayline-scratch-removal", daemon=True).start()


class _LateLogWriter:
    """Streams an execution's logs to the control plane; connects on first use only."""

    def __init__(self, job: ExecutionJob) -> None:
        self._job = job
        self._link: ControlPlaneLink | None = None

    def __call__(self, batch: list[Record]) -> None:
        if not self._job.log_credential:
            raise RuntimeError("this execution has no credential to stream its logs; they come with its result")
        if self._link is None:
            from rayline.runtime.control_plane_link import ControlPlaneLink

            # Serve's client announces itself at INFO: not a line of the user's execution.
            logging.getLogger("ray.serve").setLevel(logging.WARNING)
            self._link = ControlPlaneLink(self._job.control_plane_app, self._job.log_credential, threads=1)
        self._link.call("append_execution_logs", self._job.execution_id, batch)


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
    sink = LogSink(_LateLogWriter(job), delay_s=STREAM_LOGS_AFTER_S)
    scratch = tempfile.mkdtemp(prefix=f"rayline-{job.execution_id}-")
    result: ExecutionResult | None = None
    failure: tuple[str, str] | None = None
    status = 0
    try:
        with fork_server().fork() as child:
            # The environment of this task (Ray sets e.g. CUDA_VISIBLE_DEVICES per task), not
            # the template's; no credential: the child records nothing itself.
            request = ChildRequest(replace(job, log_credential=""), {**os.environ, **job.environment}, scratch)
            deadline = time.monotonic() + job.timeout_s if job.timeout_s else None
            try:
                send(child.channel, request)
                while (message := receive(child.channel, deadline)) is not None:
                    kind, payload = message
                    if kind == "result":  # its last message: its exit is not waited for
                        result = payload
                        break
                    sink.add_record(payload)
            except TimeoutError:
                child.kill()
                failure = (ExecutionStatus.FAILED, timed_out_error(job.timeout_s or 0, STOPPED))
            except OSError:  # the child closed its channel while being written to: it crashed
                child.kill()
            if result is None:
                status = child.wait()
    except TemplateGone as error:
        failure = (ExecutionStatus.ERROR, f"The execution could not run to its end: {error}.")
    finally:
        logs = sink.close()
        _removals.put(scratch)  # off the answer's path: the folder may hold what the user's code wrote
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
