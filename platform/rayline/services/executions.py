"""Running pipelines and reading executions back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, select, union_all

from rayline.domain.files import FileValue
from rayline.domain.jobs import ExecutionJob
from rayline.domain.mappings import (
    gather_inputs,
    normalize_inputs_mapping,
    normalize_outputs_mapping,
    returned_files,
    returned_outputs,
)
from rayline.domain.statuses import ExecutionStatus, Mode
from rayline.errors import Conflict, InvalidInput, NotFound, PlatformFailure, Unavailable
from rayline.services.pipelines import READY, PipelineService, pipeline_specs
from rayline.store import executions as store
from rayline.store.db import Database
from rayline.store.models import (
    Deployment,
    Execution,
    ExecutionFile,
    ExecutionLog,
    ListMetricBatch,
    MetricValue,
    Pipeline,
)

logger = logging.getLogger(__name__)

# The most deployments one query of recent_for_deployment reads (SQLite: 500 at most).
UNION_BRANCHES = 200


class Runner(Protocol):
    def submit(self, job: ExecutionJob, package_uri: str, requirements: list[str]) -> Future:
        """Start the execution; the future is done once it has ended and is recorded (its result
        may be the record as it ended, which saves reading it again)."""

    def prepare(self, package_uri: str, requirements: list[str]) -> None:
        """Get ready to run executions of this environment soon (best effort)."""


def parse_json_field(field: str, text: Any, default: Any) -> Any:
    """A form field holding JSON (already decoded when the form was read as inputs)."""
    if text is None or text == "":
        return default
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError as error:
        raise InvalidInput(f"{field} must be a JSON string ({error}).") from None


class ExecutionService:
    def __init__(
        self,
        db: Database,
        pipelines: PipelineService,
        runner: Runner,
        environment: Callable[[], dict[str, str]],
        max_file_bytes: int,
        flush_pod: Callable[[str], object] = lambda deployment_name: None,
    ) -> None:
        self._db = db
        # A warm pod answers before its batch writer commits the record: a read that would miss
        # one of its executions first asks it to commit (read-your-writes).
        self._flush_pod = flush_pod
        self._max_file_bytes = max_file_bytes
        self._pipelines = pipelines
        self._runner = runner
        self._environment = environment  # the environment variables, read at each execution start
        # Executions this process started, until they end: a waiter is woken by the end itself
        # instead of polling SQL.
        self._running: dict[str, Future] = {}
        # Executions in flight per elastic deployment started here (admission, max_queued_executions).
        self._in_flight: dict[str, int] = {}
        self._admission = threading.Lock()

    def run_pipeline(
        self,
        pipeline_name: str,
        inputs: dict[str, Any],
        inputs_mapping: list | None = None,
        outputs_mapping: list | None = None,
    ) -> Execution:
        """Check the inputs, record the execution as Pending, and start it in a fresh worker.
        Mappings may take inputs from constants, environment variables or null, and drop outputs."""
        pipeline = self._pipelines.get(pipeline_name)
        if pipeline.status != READY:
            raise Conflict(
                f"Pipeline {pipeline_name!r} is {pipeline.status}, not ready; wait for it with get_pipeline()."
            )
        specs, outputs = pipeline_specs(pipeline)
        return self._start(
            pipeline,
            inputs,
            normalize_inputs_mapping(specs, inputs_mapping or None, "run"),
            normalize_outputs_mapping(outputs, outputs_mapping or None, "run"),
            deployment_name=None,
        )

    def prepare(self, pipeline: Pipeline) -> None:
        """Have the runner get ready for this pipeline's executions (an elastic deployment of it
        was created); a failure only means its first execution starts slower."""
        try:
            self._runner.prepare(pipeline.package_uri, pipeline.requirements)
        except Exception:
            logger.warning("could not prepare a worker for pipeline %s", pipeline.name, exc_info=True)

    def run_elastic_deployment(self, deployment: Deployment, inputs: dict[str, Any]) -> Execution:
        """One execution of an elastic deployment, named after it, in a fresh worker; refused
        (503) while ``max_queued_executions`` of its executions are already in flight."""
        name, limit = deployment.name, deployment.max_queued_executions
        with self._admission:
            if self._in_flight.get(name, 0) >= limit:
                raise Unavailable(
                    f"Deployment {name!r} already runs {limit} execution(s), the most it takes at once "
                    "(max_queued_executions); retry later, or deploy it with a higher "
                    "max_queued_executions.",
                    retry_after_s=1,
                )
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
        try:
            execution = self._start(
                self._pipelines.get(deployment.pipeline_name),
                inputs,
                deployment.inputs_mapping,
                deployment.outputs_mapping,
                deployment_name=name,
                timeout_s=deployment.execution_timeout_s,
            )
        except BaseException:
            self._leave(name)
            raise
        ended = self._running.get(execution.execution_id)
        if ended is None:
            self._leave(name)
        else:
            ended.add_done_callback(lambda _: self._leave(name))
        return execution

    def _leave(self, deployment_name: str) -> None:
        with self._admission:
            self._in_flight[deployment_name] -= 1

    def _start(
        self,
        pipeline: Pipeline,
        inputs: dict[str, Any],
        inputs_mapping: list[dict],
        outputs_mapping: list[dict],
        deployment_name: str | None,
        timeout_s: float | None = None,
    ) -> Execution:
        environment = self._environment()
        values, records = gather_inputs(inputs_mapping, inputs, environment)
        execution = store.create_execution(
            self._db,
            name_prefix=deployment_name or pipeline.name,
            pipeline_name=pipeline.name,
            deployment_name=deployment_name,
            inputs=records,
            status=store.RUNNING,  # submitted below, at once
        )
        if any(isinstance(value, FileValue) for value in values.values()):
            with self._db.session() as session:
                store.save_files(session, execution.execution_id, "input", values)
        job = ExecutionJob(
            execution_id=execution.execution_id,
            function_path=pipeline.function_path,
            function_name=pipeline.function_name,
            inputs=values,
            outputs=pipeline.outputs,
            outputs_mapping=outputs_mapping,
            timeout_s=timeout_s,
            environment=environment,
            max_file_bytes=self._max_file_bytes,
        )
        try:
            ended = self._runner.submit(job, pipeline.package_uri, pipeline.requirements)
            self._running[execution.execution_id] = ended
            ended.add_done_callback(lambda _: self._running.pop(execution.execution_id, None))
        except Exception as error:  # nothing may stay Pending forever when Ray refuses the task
            message = f"Could not start the execution: {error}"
            store.finish(self._db, execution.execution_id, store.ERROR, error=message)
            raise PlatformFailure(message, additional_data={"execution_id": execution.execution_id}) from error
        return execution

    def get(self, execution_id: str, flush: bool = True) -> Execution:
        with self._db.session() as session:
            row = store.get(session, execution_id)
        # Missing, or not ended yet: its pod may have answered it and not committed its end.
        stale = row is None or (row.status in store.UNFINISHED_STATUSES and row.deployment_name is not None)
        if stale and flush:
            name, _, number = execution_id.rpartition("-")
            if number.isdigit() and self._flush_pods(Deployment.name == name):
                with self._db.session() as session:
                    row = store.get(session, execution_id)
        if row is None:
            raise NotFound(f"Execution {execution_id!r} does not exist.")
        return row

    def _flush_pods(self, *where: Any) -> bool:
        """Ask the warm pods of the deployments ``where`` selects to commit what they answered;
        False when no such deployment is, or none could be asked."""
        with self._db.session() as session:
            names = list(
                session.scalars(
                    select(Deployment.name).where(
                        Deployment.mode == Mode.LOW_LATENCY, Deployment.is_enabled.is_(True), *where
                    )
                )
            )
        flushed = False
        for name in names:
            try:
                self._flush_pod(name)
                flushed = True
            except Exception:  # a pod that is down or starting: its journal is replayed by the next one
                logger.warning("could not ask the pod of %s to commit its records", name, exc_info=True)
        return flushed

    def list_for_pipeline(self, pipeline_name: str) -> list[Execution]:
        self._flush_pods(Deployment.pipeline_name == pipeline_name)
        return store.executions_page(self._db, Execution.pipeline_name == pipeline_name, limit=None, count=False)[0]

    def latest_for_pipeline(self, pipeline_name: str) -> Execution | None:
        self._flush_pods(Deployment.pipeline_name == pipeline_name)
        return self._latest(Execution.pipeline_name == pipeline_name)

    def latest_for_deployment(self, deployment_name: str) -> Execution | None:
        self._flush_pods(Deployment.name == deployment_name)
        return self._latest(Execution.deployment_name == deployment_name)

    def page_for_pipeline(
        self, pipeline_name: str, status: str | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[list[Execution], int]:
        """One page of a pipeline's executions, newest first, and their number (of ``status``
        when given), for the console: no pod is asked to commit (what it answered is at most a
        second late)."""
        if status is not None and status not in tuple(ExecutionStatus):
            raise InvalidInput(f"status must be one of {', '.join(ExecutionStatus)}, not {status!r}.")
        return store.executions_page(self._db, Execution.pipeline_name == pipeline_name, status, offset, limit)

    def recent_for_deployment(
        self, deployment_names: Sequence[str], limit: int = 30, flush: bool = False
    ) -> dict[str, list[Execution]]:
        """The latest ``limit`` executions of each deployment, newest first (the console's
        charts), in one query (per UNION_BRANCHES deployments); ``flush``: their pods commit what they
        answered first (a deployment's own page, not the overview's rows)."""
        names = list(dict.fromkeys(deployment_names))
        recent: dict[str, list[Execution]] = {name: [] for name in names}
        if not names:
            return recent
        if flush:
            self._flush_pods(Deployment.name.in_(names))
        # One statement: a branch per deployment, each its newest ``limit`` by the (deployment,
        # created_at) index, so that a long history costs nothing (ROW_NUMBER() OVER a partition
        # would number all of it). SQLite takes at most 500 branches a statement.
        for chunk in range(0, len(names), UNION_BRANCHES):
            branches = [
                select(Execution.execution_id)
                .where(Execution.deployment_name == name)
                .order_by(Execution.created_at.desc())
                .limit(limit)
                .subquery()
                for name in names[chunk : chunk + UNION_BRANCHES]
            ]
            latest = union_all(*(select(branch.c.execution_id) for branch in branches))
            rows, _ = store.executions_page(self._db, Execution.execution_id.in_(latest), limit=None, count=False)
            for row in rows:  # newest first, as executions_page orders them
                recent[row.deployment_name or ""].append(row)
        return recent

    def _latest(self, where: Any) -> Execution | None:
        rows, _ = store.executions_page(self._db, where, limit=1, count=False)
        return rows[0] if rows else None

    async def wait_until_final(self, execution_id: str, hold_s: float, poll_s: float = 0.02) -> Execution:
        """The record once it has ended, or as it is after ``hold_s`` seconds (NotFound at once
        for an execution that does not exist: ``get`` has its pod commit what it answered)."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        ended = self._running.get(execution_id)
        if ended is not None:
            with contextlib.suppress(TimeoutError):
                recorded = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(ended)), hold_s)
                if isinstance(recorded, Execution):  # the record as its end was committed: no read
                    return recorded
        row = await asyncio.to_thread(self.get, execution_id)  # its pod commits first, once, if need be
        while row.status not in store.FINAL_STATUSES and loop.time() - began < hold_s:
            await asyncio.sleep(poll_s)
            row = await asyncio.to_thread(self.get, execution_id, False)
        return row

    def returned_output(self, execution: Execution) -> dict[str, Any]:
        """What its caller gets back from an ended execution, file outputs as ``FileValue``."""
        output = returned_outputs(execution.outputs)
        for returned_name, name in returned_files(execution.outputs).items():
            output[returned_name] = self.value(execution.execution_id, "output", name)
        return output

    def value(self, execution_id: str, direction: str, name: str) -> Any:
        """The value of one input or output of an execution; a file as ``FileValue``."""
        execution = self.get(execution_id)
        key = f"pipeline_{direction}_name"
        record = next(
            (r for r in (execution.inputs if direction == "input" else execution.outputs) if r[key] == name), None
        )
        if record is None:
            raise NotFound(f"Execution {execution_id!r} has no {direction} named {name!r}.")
        if record["data_type"] != "file" or record.get("value") is None:
            return record.get("value")
        found = store.load_file(self._db, execution_id, direction, name)
        if found is None:
            raise NotFound(
                f"Execution {execution_id!r} keeps no file for {direction} {name!r}: files are kept "
                "RAYLINE_FILE_RETENTION_S after an execution ends (or its pod stopped before storing it)."
            )
        return found

    def logs(
        self, execution_id: str, from_ts: datetime | None, to_ts: datetime | None, limit: int | None
    ) -> list[ExecutionLog]:
        self.get(execution_id)
        return store.log_window(
            self._db, ExecutionLog, ExecutionLog.execution_id == execution_id, from_ts, to_ts, limit
        )

    def log_tail(
        self, execution_id: str, after_id: int | None = None, limit: int = 500, skip: Collection[int] = ()
    ) -> list[ExecutionLog]:
        """Its log lines after the cursor ``after_id`` (a row id) but those in ``skip`` (a live tail's,
        ``rayline.store.executions.log_tail``), or its last ``limit`` lines."""
        return store.log_tail(self._db, ExecutionLog, ExecutionLog.execution_id == execution_id, after_id, limit, skip)

    def delete(self, execution_id: str) -> None:
        row = self.get(execution_id)
        if row.status not in store.FINAL_STATUSES:
            raise Conflict(f"Execution {execution_id!r} is {row.status}; it can be deleted once it has ended.")
        with self._db.session() as session:
            session.execute(delete(ExecutionLog).where(ExecutionLog.execution_id == execution_id))
            session.execute(delete(ExecutionFile).where(ExecutionFile.execution_id == execution_id))
            session.execute(delete(MetricValue).where(MetricValue.execution_id == execution_id))
            session.execute(delete(ListMetricBatch).where(ListMetricBatch.execution_id == execution_id))
            session.execute(delete(Execution).where(Execution.execution_id == execution_id))
