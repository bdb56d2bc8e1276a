"""Elastic executions: each in a fresh process, forked for it, as a Ray task that holds its CPU.

An execution is a task (``rayline.runtime.elastic_task``) with the pipeline's runtime
environment: its package as the ``working_dir``, its requirements as the ``pip`` environment
(built once per node, cached). Ray schedules it like any task (a CPU held while it runs, spread
over the nodes, seen by the autoscaler) and reuses the task's worker for the next executions of
that environment; in it, each execution runs in a child forked from a clean template, so no
execution ever shares a process, a module global or an import cache with another. The task
returns the result; this module records it, so that workers need no database access.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import ray
from ray.exceptions import (
    NodeDiedError,
    RayTaskError,
    RuntimeEnvSetupError,
    TaskCancelledError,
    WorkerCrashedError,
)

from rayline.domain.code_credentials import code_environment
from rayline.domain.deployments import timed_out_error
from rayline.domain.failures import NODE_LOST_ERROR
from rayline.domain.jobs import ExecutionJob
from rayline.runtime.elastic_task import execution_task, preparation_task
from rayline.runtime.environment_errors import runtime_env_failure
from rayline.runtime.worker import ExecutionResult
from rayline.store import executions as store
from rayline.store.db import Database
from rayline.store.models import Execution, utcnow

logger = logging.getLogger(__name__)

# How long an execution's credential lives at most, beyond its execution_timeout_s (past it, its
# logs still come with its result; its end ends it sooner).
CREDENTIAL_TTL_S = 24 * 3600.0
# The task stops a child past execution_timeout_s itself; its worker is ended only if the task
# has not returned this long after that (a worker that hangs, or queued that long for a CPU).
STOP_WORKER_AFTER_TIMEOUT_S = 30.0
# Ray tasks kept ready, one per runtime environment used most recently.
TASKS_KEPT = 256


# Ray's runtime-env agent downloads packages with the node's RAY_RUNTIME_ENV_BEARER_TOKEN (the
# package token); the worker processes that run user code get it blanked (Ray cannot unset it).
# So are the AWS keys the control plane may hold for an S3 data store (inherited from the node).
_HIDDEN_FROM_USER_CODE = {
    name: ""
    for name in ("RAY_RUNTIME_ENV_BEARER_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
}


def runtime_env(package_uri: str, requirements: list[str]) -> dict[str, Any]:
    env: dict[str, Any] = {"working_dir": package_uri, "env_vars": dict(_HIDDEN_FROM_USER_CODE)}
    if requirements:
        env["pip"] = {"packages": list(requirements), "pip_check": False}
    return env


def _platform_error(error: BaseException) -> str:
    if isinstance(error, RuntimeEnvSetupError):
        return f"The pipeline's environment could not be set up: {runtime_env_failure(str(error))}"
    if isinstance(error, NodeDiedError):
        node = re.search(r"node ID: ([0-9a-f]+)", str(error), re.I)
        return NODE_LOST_ERROR.format(node=node.group(1) if node else "unknown")
    if isinstance(error, WorkerCrashedError):
        return "The worker process running the execution died (out of memory, or killed)."
    if isinstance(error, TaskCancelledError):
        return "The execution was cancelled."
    if isinstance(error, RayTaskError):
        return f"Rayline's worker failed: {str(error).strip()[-2000:]}"
    return f"The execution could not run: {type(error).__name__}: {error}"


class ElasticRunner:
    """Submits executions to Ray and records their results, and the platform failures that
    their task could not report."""

    def __init__(
        self,
        db: Database,
        execution_credential: Callable[[str, float], str] | None = None,
        resources: dict[str, float] | None = None,
        environment_url: str | None = None,
    ) -> None:
        self._db = db
        self._resources = dict(resources or {})  # RAYLINE_USER_CODE_RESOURCES
        # What a worker streams its logs with (this execution's only, until it ends): workers
        # run user code, so they never get the database URL.
        self._execution_credential = execution_credential
        self._environment_url = environment_url  # where the execution's SDK clients reach the API
        self._recorder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rayline-record")
        self._tasks: OrderedDict[tuple[str, tuple[str, ...]], Any] = OrderedDict()  # LRU, by environment
        self._tasks_lock = threading.Lock()

    def _task(self, package_uri: str, requirements: list[str]) -> Any:
        key = (package_uri, tuple(requirements))
        with self._tasks_lock:
            task = self._tasks.get(key)
            if task is None:
                task = self._tasks[key] = execution_task(runtime_env(package_uri, requirements), self._resources)
                if len(self._tasks) > TASKS_KEPT:
                    self._tasks.popitem(last=False)
            self._tasks.move_to_end(key)
            return task

    def prepare(self, package_uri: str, requirements: list[str]) -> None:
        """Have Ray start a worker of this environment, and its template, before the first
        execution needs one (Ray keeps it in its pool of idle workers)."""
        preparation_task(runtime_env(package_uri, requirements), self._resources).remote()

    def submit(self, job: ExecutionJob, package_uri: str, requirements: list[str]) -> Future:
        """Start the execution; the returned future is done once it has ended and is recorded."""
        if self._execution_credential is not None:
            # Past a day (and its timeout: it may wait for a CPU first) at most; the execution's
            # end ends it sooner (every use checks that it still runs).
            job.log_credential = self._execution_credential(job.execution_id, CREDENTIAL_TTL_S + (job.timeout_s or 0))
            if self._environment_url:
                job.code_environment = code_environment(self._environment_url, job.log_credential, job.execution_id)
        ref = self._task(package_uri, requirements).options(name=f"rayline-execution:{job.execution_id}").remote(job)

        recorded: Future = Future()
        timed_out = threading.Event()
        timer = (
            threading.Timer(job.timeout_s + STOP_WORKER_AFTER_TIMEOUT_S, self._stop, (timed_out, ref))
            if job.timeout_s
            else None
        )

        def record(future: Future) -> None:
            row = None
            try:
                row = self._settle(job, future, timed_out.is_set())
            finally:
                recorded.set_result(row)

        def settle(future: Future) -> None:
            # On Ray's callback thread: hand off at once (SQL may wait for a lock; Ray must not).
            if timer is not None:
                timer.cancel()
            self._recorder.submit(record, future)

        if timer is not None:
            timer.daemon = True
            timer.start()
        ref.future().add_done_callback(settle)
        return recorded

    @staticmethod
    def _stop(timed_out: threading.Event, ref: Any) -> None:
        """Long past execution_timeout_s, the task has not returned: end its worker process."""
        timed_out.set()
        try:
            ray.cancel(ref, force=True)
        except Exception:  # it ended meanwhile, most likely
            logger.info("could not stop a timed-out execution's worker", exc_info=True)

    def _settle(self, job: ExecutionJob, future: Future, timed_out: bool) -> Execution | None:
        # Runs on a thread of ours when the execution ends (no Ray call needed: the result is in).
        # Records the worker's result; a platform failure (crash, environment) becomes Error, and
        # a worker stopped for running too long, Failed. Returns the record as it ended it.
        execution_id = job.execution_id
        try:
            result: ExecutionResult = future.result()
            return store.finish(
                self._db,
                execution_id,
                result.status,
                outputs=result.outputs,
                error=result.error,
                start_date=result.started_at,
                logs=result.logs,
                files=result.files,
            )
        except BaseException as error:  # noqa: BLE001 - every failure becomes the record's Error
            if timed_out and job.timeout_s is not None:  # only the timer of a job with a timeout sets it
                status, message = store.FAILED, timed_out_error(job.timeout_s, "; its worker process was stopped.")
            else:
                status, message = store.ERROR, _platform_error(error)
        try:
            row = store.finish(
                self._db, execution_id, status, error=message, ending_log=[(utcnow(), "stderr", message)]
            )
            if row is not None:
                logger.warning("execution %s ended in %s: %s", execution_id, status, message)
            return row
        except Exception:
            logger.exception("could not record the end of execution %s", execution_id)
            return None
