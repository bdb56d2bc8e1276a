"""Elastic executions: each in a fresh worker process, on a spare or as a ``max_calls=1`` task.

``max_calls=1`` makes Ray end the worker process after its one task, and a spare is killed after
its one execution, so no execution ever shares a process, a module global or an import cache
with another. The pipeline's package is the ``working_dir`` and its requirements the ``pip``
environment (built once per node, cached). The worker returns its result; this module records
it, so that workers need no database access (nor the imports it costs) for short executions.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import ray
from ray.exceptions import (
    ActorDiedError,
    ActorUnavailableError,
    NodeDiedError,
    RayTaskError,
    RuntimeEnvSetupError,
    TaskCancelledError,
    WorkerCrashedError,
)

from rayline.domain.deployments import timed_out_error
from rayline.domain.failures import NODE_DEATH_GRACE_S, NODE_LOST_ERROR
from rayline.runtime import cluster_state
from rayline.runtime.environment_errors import runtime_env_failure
from rayline.runtime.spare_workers import Spare, SparePool
from rayline.runtime.worker import ExecutionJob, ExecutionResult, run_execution
from rayline.store import executions as store
from rayline.store.db import Database
from rayline.store.models import utcnow

logger = logging.getLogger(__name__)

# How long an execution without execution_timeout_s may stream its logs (its credential's life;
# past it, its logs still come with its result).
CREDENTIAL_TTL_S = 24 * 3600.0


# Ray's runtime-env agent downloads packages with the node's RAY_RUNTIME_ENV_BEARER_TOKEN (the
# package token); the worker processes that run user code get it blanked (Ray cannot unset it).
_HIDDEN_FROM_USER_CODE = {"RAY_RUNTIME_ENV_BEARER_TOKEN": ""}


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
    if isinstance(error, (WorkerCrashedError, ActorDiedError)):
        return "The worker process running the execution died (out of memory, or killed)."
    if isinstance(error, ActorUnavailableError):
        return "The worker process running the execution could not be reached any more (its node may be lost)."
    if isinstance(error, TaskCancelledError):
        return "The execution was cancelled."
    if isinstance(error, RayTaskError):
        return f"Rayline's worker failed: {str(error).strip()[-2000:]}"
    return f"The execution could not run: {type(error).__name__}: {error}"


def _spare_node_lost(spare: Spare | None, error: BaseException) -> str | None:
    """The error of an execution whose spare worker died with its node, else None. The process
    of a spare on a live node is reported dead at once (ActorDiedError); one whose node is lost
    first becomes unreachable (ActorUnavailableError) until Ray declares the node dead."""
    if spare is None or not isinstance(error, (ActorDiedError, ActorUnavailableError)):
        return None
    node_id = spare.node_id()
    if node_id is None:
        return None
    deadline = time.monotonic() + (NODE_DEATH_GRACE_S if isinstance(error, ActorUnavailableError) else 0.0)
    while True:
        try:
            if cluster_state.nodes().get(node_id) is False:
                return NODE_LOST_ERROR.format(node=node_id)
        except Exception:  # the GCS may be busy with the very loss: the message stays Ray's
            logger.info("could not ask Ray whether node %s is lost", node_id, exc_info=True)
            return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(1.0)


class ElasticRunner:
    """Submits executions to Ray and records platform failures that the worker could not.

    An execution runs on a spare single-use worker when one is ready for its environment, else
    as a ``max_calls=1`` task; either way in a process that serves no other execution.
    """

    def __init__(
        self,
        db: Database,
        spare_workers: int = 0,
        execution_credential: Callable[[str, float], str] | None = None,
        resources: dict[str, float] | None = None,
    ) -> None:
        self._db = db
        self._resources = dict(resources or {})  # RAYLINE_USER_CODE_RESOURCES
        # What a worker streams its logs with (this execution's only, until it ends): workers
        # run user code, so they never get the database URL.
        self._execution_credential = execution_credential
        self._spares = SparePool(spare_workers, self._resources)
        self._recorder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rayline-record")
        self._unreachable = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rayline-unreachable")

    def submit(self, job: ExecutionJob, package_uri: str, requirements: list[str]) -> Future:
        """Start the execution; the returned future is done once it has ended and is recorded."""
        env, key = runtime_env(package_uri, requirements), (package_uri, tuple(requirements))
        if self._execution_credential is not None:
            job.log_credential = self._execution_credential(job.execution_id, (job.timeout_s or CREDENTIAL_TTL_S) + 60)
        store.mark_running(self._db, job.execution_id)
        spare = self._spares.take(key, env)
        if spare is not None:
            ref = spare.actor.run.remote(job)
        else:
            ref = run_execution.options(
                runtime_env=env, resources=self._resources, name=f"rayline-execution:{job.execution_id}"
            ).remote(job)

        recorded: Future = Future()
        timed_out = threading.Event()
        timer = threading.Timer(job.timeout_s, self._stop, (timed_out, ref, spare)) if job.timeout_s else None

        def record(future: Future) -> None:
            try:
                self._settle(job, future, timed_out.is_set(), spare)
            finally:
                recorded.set_result(None)

        def settle(future: Future) -> None:
            # On Ray's callback thread: hand off at once (SQL may wait for a lock; Ray must not).
            if timer is not None:
                timer.cancel()
            if spare is not None:
                self._spares.retire(spare.actor, key, env)
            # A spare that became unreachable: its end waits for Ray to tell whether its node is
            # lost, on threads of its own, so that other executions' ends are recorded meanwhile.
            unreachable = (
                spare is not None and not future.cancelled() and isinstance(future.exception(), ActorUnavailableError)
            )
            (self._unreachable if unreachable else self._recorder).submit(record, future)

        if timer is not None:
            timer.daemon = True
            timer.start()
        ref.future().add_done_callback(settle)
        return recorded

    @staticmethod
    def _stop(timed_out: threading.Event, ref: Any, spare: Spare | None) -> None:
        """Past execution_timeout_s: end the worker process (unlike a thread, it can be killed)."""
        timed_out.set()
        try:
            if spare is not None:
                ray.kill(spare.actor, no_restart=True)
            else:
                ray.cancel(ref, force=True)
        except Exception:  # it ended meanwhile, most likely
            logger.info("could not stop a timed-out execution's worker", exc_info=True)

    def _settle(self, job: ExecutionJob, future: Future, timed_out: bool, spare: Spare | None = None) -> None:
        # Runs on a thread of ours when the execution ends (no Ray call needed: the result is in).
        # Records the worker's result; a platform failure (crash, environment) becomes Error, and
        # a worker stopped for running too long, Failed.
        execution_id = job.execution_id
        try:
            result: ExecutionResult = future.result()
            store.append_logs(self._db, execution_id, result.logs)
            if result.files:
                with self._db.session() as session:
                    store.save_files(session, execution_id, "output", result.files)
            store.finish(
                self._db,
                execution_id,
                result.status,
                outputs=result.outputs,
                error=result.error,
                start_date=result.started_at,
            )
            return
        except BaseException as error:  # noqa: BLE001 - every failure becomes the record's Error
            if timed_out and job.timeout_s is not None:  # only the timer of a job with a timeout sets it
                status, message = store.FAILED, timed_out_error(job.timeout_s, "; its worker process was stopped.")
            else:
                status, message = store.ERROR, _spare_node_lost(spare, error) or _platform_error(error)
        try:
            if store.finish(self._db, execution_id, status, error=message):
                store.append_logs(self._db, execution_id, [(utcnow(), "stderr", message)])
                logger.warning("execution %s ended in %s: %s", execution_id, status, message)
        except Exception:
            logger.exception("could not record the end of execution %s", execution_id)
