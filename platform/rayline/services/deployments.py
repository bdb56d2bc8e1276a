"""Deployments: creating, observing, updating and deleting them, and their endpoint tokens.

SQL is the truth and Serve the runtime: a low-latency deployment is a row here and, while it is
enabled, a Serve application; ``reconcile`` makes the second follow the first (after a restart).
Elastic deployments hold nothing in Ray while idle.
"""

from __future__ import annotations

import asyncio
import builtins  # in annotations after a method named list, which shadows the built-in there
import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from rayline.config import Settings
from rayline.domain import deployments as rules
from rayline.domain.mappings import normalize_inputs_mapping, normalize_outputs_mapping, with_constants
from rayline.domain.names import validate_name
from rayline.domain.outcomes import Busy, Ended, Outcome, Refused
from rayline.domain.pod_scaling import FIELDS as SCALING_FIELDS
from rayline.domain.pod_scaling import PodScaling, check_scaling, describe_scaling
from rayline.domain.schedules import human_readable, next_due, parse_schedule
from rayline.domain.statuses import LISTED_POD_STATUSES, ExecutionRule, Mode, PodStatus
from rayline.domain.tokens import MIN_CHOSEN_TOKEN_LENGTH, generate_token, hash_token, token_matches
from rayline.errors import AlreadyExists, Conflict, InvalidInput, NotFound, PlatformFailure, Unavailable
from rayline.services.credentials import SecretBox
from rayline.services.executions import ExecutionService
from rayline.services.pipelines import READY, PipelineService, pipeline_specs
from rayline.store.db import Database, rowcount
from rayline.store.executions import add_deployment_log, deployment_log_line, log_tail, log_window
from rayline.store.models import Deployment, DeploymentLog, Pipeline, Pod, utcnow
from rayline.store.pods import wait_until_no_pod

logger = logging.getLogger(__name__)

ENDPOINT_PREFIX = "/endpoints"
RESERVED_NAMES = ("rayline",)  # the control plane's own Serve application
RESERVED_PATHS = ("v1",)  # /endpoints/v1/... serves endpoint results


class ServeRuntime(Protocol):
    """The Ray Serve operations a low-latency deployment needs (rayline.runtime.serve_deployments)."""

    def deploy(
        self,
        config: rules.ReplicaConfig,
        *,
        ram_request: str | None,
        gpu_request: int | None,
        package_uri: str,
        requirements: list[str],
        scaling: PodScaling,
    ) -> None: ...
    def delete(self, name: str) -> None: ...
    def states(self) -> dict[str, Any]: ...
    async def run(self, name: str, given: dict[str, Any]) -> Outcome: ...
    def run_blocking(self, name: str, given: dict[str, Any]) -> Outcome: ...


def scaling_of(row: Deployment) -> PodScaling:
    """A low-latency deployment's pod settings (one pod, always on, for a row from before them)."""
    defaults = PodScaling()
    return PodScaling(
        min_pods=row.min_pods if row.min_pods is not None else defaults.min_pods,
        max_pods=row.max_pods if row.max_pods is not None else defaults.max_pods,
        scale_down_after_s=row.scale_down_after_s or defaults.scale_down_after_s,
        standby_after_s=row.standby_after_s or defaults.standby_after_s,
    )


def ended_or_raise(outcome: Outcome) -> Ended:
    """A warm pod's answer as the platform's errors: bad inputs (400), a full pod (503)."""
    if isinstance(outcome, Refused):
        raise InvalidInput(outcome.message)
    if isinstance(outcome, Busy):
        raise Unavailable(outcome.message, retry_after_s=outcome.retry_after_s)
    return outcome


def _status_from_serve(state: Any, has_been_up: bool, scaling: PodScaling) -> str:
    """Serve's application status -> the deployment's, for an enabled low-latency deployment.
    A reload (a new pod started while the old one still serves) is ``creation_pending``; a pod
    that was up and is being restarted with none serving is ``down_retrying``. An autoscaled
    deployment with no pod is in ``standby`` (min_pods=0), and ``creation_pending`` while a call
    wakes it."""
    app_status = state.status if state else None
    replicas = state.replica_states if state else {}
    if app_status == "RUNNING" and not scaling.fixed and not replicas.get("RUNNING"):
        if replicas.get("STARTING") or replicas.get("PENDING_MIGRATION"):
            return rules.CREATION_PENDING
        if scaling.min_pods == 0 and not any(replicas.values()):  # the last pod is gone, not going
            return rules.STANDBY
    if app_status == "RUNNING":
        return rules.UP
    if app_status == "DEPLOY_FAILED":
        return rules.CREATION_FAILED
    serving = bool(state and state.replica_states.get("RUNNING"))
    if has_been_up and not serving and app_status in ("DEPLOYING", "UNHEALTHY", None, "NOT_STARTED"):
        return rules.DOWN_RETRYING
    return rules.CREATION_PENDING


class DeploymentService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        pipelines: PipelineService,
        executions: ExecutionService,
        box: SecretBox,
        serve_runtime: ServeRuntime,
        pod_credential: Callable[[str], str],
        code_environment: Callable[[str, datetime], dict[str, str]] = lambda name, created_at: {},
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._pod_credential = pod_credential  # what a deployment's pods record with (no database URL)
        self._code_environment = code_environment  # how their user code reaches the API (its metrics)
        self._on_change = on_change  # wakes the pods that follow a deployment's row
        self._settings = settings
        self._pipelines = pipelines
        self._executions = executions
        self._box = box
        self._serve = serve_runtime
        # A low-latency periodic execution holds a thread while it runs: one per deployment at most.
        self._periodic = ThreadPoolExecutor(max_workers=32, thread_name_prefix="rayline-periodic")
        self._periodic_running: set[str] = set()
        self._periodic_lock = threading.Lock()

    # --- reading -------------------------------------------------------------------------------

    def _row(self, name: str) -> Deployment:
        with self._db.session() as session:
            row = session.get(Deployment, name)
        if row is None:
            raise NotFound(f"Deployment {name!r} does not exist; list_deployments() shows the ones that do.")
        return row

    def get(self, name: str) -> Deployment:
        """The deployment, its status refreshed from Serve for a low-latency one."""
        row = self._row(name)
        if row.mode == Mode.LOW_LATENCY and row.is_enabled:
            row = self._observed(row, self._serve.states())
        return row

    def list_observed(self) -> builtins.list[Deployment]:
        """``list``, each low-latency status refreshed as ``get`` does, from one look at Serve."""
        rows = self.list()
        if not any(row.mode == Mode.LOW_LATENCY and row.is_enabled for row in rows):
            return rows
        states = self._serve.states()
        return [self._observed(row, states) if row.mode == Mode.LOW_LATENCY and row.is_enabled else row for row in rows]

    def _observed(self, row: Deployment, states: dict[str, Any]) -> Deployment:
        """An enabled low-latency row with the status Serve's ``states`` imply, written back."""
        name = row.name
        state = states.get(name)
        status = _status_from_serve(state, row.has_been_up, scaling_of(row))
        if status != row.status or (status == rules.UP and not row.has_been_up):
            with self._db.session() as session:
                if status == rules.CREATION_FAILED:
                    self._tell_failure(session, name, state)
                current = session.get(Deployment, name)
                if current is not None:
                    current.status = status
                    current.has_been_up = current.has_been_up or status == rules.UP
                    row = current
        return row

    @staticmethod
    def _tell_failure(session: Session, name: str, state: Any) -> None:
        """Log why the pods could not start, once per failure: the reader that moves the row to
        creation_failed does, in the same transaction, so that whoever sees the status finds the
        reason in the logs (the SDK shows their last lines)."""
        moved = session.execute(
            update(Deployment)
            .where(
                Deployment.name == name,
                Deployment.is_enabled.is_(True),
                Deployment.status != rules.CREATION_FAILED,
            )
            .values(status=rules.CREATION_FAILED)
        )
        if rowcount(moved):
            reason = (getattr(state, "message", "") or "").strip()
            session.add(
                deployment_log_line(name, reason or "The pod could not start, and Ray Serve gave no reason.", "stderr")
            )

    def list(self) -> list[Deployment]:
        with self._db.session() as session:
            return list(session.scalars(select(Deployment).order_by(Deployment.created_at.desc())))

    def list_for_pipeline(self, pipeline_name: str) -> builtins.list[Deployment]:
        """A pipeline's deployments, newest first (their statuses as SQL has them)."""
        with self._db.session() as session:
            return list(
                session.scalars(
                    select(Deployment)
                    .where(Deployment.pipeline_name == pipeline_name)
                    .order_by(Deployment.created_at.desc())
                )
            )

    def find_by_path(self, path: str) -> Deployment | None:
        with self._db.session() as session:
            return session.scalars(select(Deployment).where(Deployment.endpoint_url_path == path)).first()

    def endpoint_token(self, row: Deployment) -> str | None:
        return self._box.open(row.endpoint_token_sealed) if row.endpoint_token_sealed else None

    def check_endpoint_token(self, row: Deployment, token: str | None) -> bool:
        return token_matches(token, row.endpoint_token_hash)

    def pods(self, name: str) -> builtins.list[Pod]:
        with self._db.session() as session:
            return list(
                session.scalars(
                    select(Pod)
                    .where(
                        Pod.deployment_name == name,
                        Pod.status.in_(LISTED_POD_STATUSES),
                    )
                    .order_by(Pod.started_at.desc())
                    .limit(self._settings.max_pods_per_deployment + 4)  # with a reload's new pods
                )
            )

    def logs(
        self, name: str, from_ts: datetime | None, to_ts: datetime | None, limit: int | None
    ) -> builtins.list[DeploymentLog]:
        self.get(name)  # a low-latency deployment's status, refreshed: a failure found now is logged first
        return log_window(self._db, DeploymentLog, DeploymentLog.deployment_name == name, from_ts, to_ts, limit)

    def log_tail(
        self, name: str, after_id: int | None = None, limit: int = 500, skip: Collection[int] = ()
    ) -> builtins.list[DeploymentLog]:
        """Its log lines after the cursor ``after_id`` (a row id) but those in ``skip`` (a live tail's,
        ``rayline.store.executions.log_tail``), or its last ``limit`` lines."""
        return log_tail(self._db, DeploymentLog, DeploymentLog.deployment_name == name, after_id, limit, skip)

    # --- calling -------------------------------------------------------------------------------

    def ensure_callable(self, row: Deployment) -> None:
        if row.execution_rule != ExecutionRule.ENDPOINT:
            raise InvalidInput(f"Deployment {row.name!r} is {row.execution_rule}, not an endpoint.")
        if not row.is_enabled:
            raise Unavailable(
                f"Deployment {row.name!r} is disabled; enable it with update_deployment({row.name!r}, is_enabled=True)."
            )
        # A reload's old pod still serves; a call to a deployment in standby waits while it wakes.
        serving = row.status == rules.UP or row.status == rules.STANDBY
        reloading = row.status == rules.CREATION_PENDING and row.has_been_up
        if row.mode == Mode.LOW_LATENCY and not serving and not reloading:
            hint = (
                "its pod failed to start: get_deployment_logs shows why"
                if row.status == rules.CREATION_FAILED
                else "its pod is starting; retry in a few seconds"
            )
            raise Unavailable(f"Deployment {row.name!r} is {row.status}: {hint}.")

    async def trigger(self, row: Deployment, given: dict[str, Any]) -> Ended | str:
        """Start one execution: in the warm pod, waiting for its end (``Ended``), or in a fresh
        worker (its execution id, at once). Bad inputs and a full pod raise, nothing recorded."""
        self.ensure_callable(row)
        if row.mode == Mode.LOW_LATENCY:
            return ended_or_raise(await self._serve.run(row.name, given))
        execution = await asyncio.to_thread(self._executions.run_elastic_deployment, row, given)
        return execution.execution_id

    def start_scheduled(self, name: str, due: datetime, catch_up: bool) -> None:
        """The scheduler's hand-off: the execution of a periodic deployment due now, started on a
        thread of ours, so that a long low-latency execution never holds the scheduler. While a
        low-latency one still runs, the next due time is skipped (and logged): no pile-up."""
        with self._periodic_lock:
            busy = name in self._periodic_running
            if not busy:
                self._periodic_running.add(name)
        if busy:
            self._log(
                name,
                f"Skipped the execution due at {due:%Y-%m-%dT%H:%M:%SZ}: the previous one is still running.",
                "stderr",
            )
            return
        self._periodic.submit(self._run_scheduled, name, due)

    def _run_scheduled(self, name: str, due: datetime) -> None:
        try:
            row = self._row(name)
            if row.mode == Mode.LOW_LATENCY:
                ended_or_raise(self._serve.run_blocking(name, {}))
            else:
                self._executions.run_elastic_deployment(row, {})
        except Exception as error:  # the deployment's logs are where its user looks
            self._log(name, f"The execution due at {due:%Y-%m-%dT%H:%M:%SZ} could not start: {error}", "stderr")
        finally:
            with self._periodic_lock:
                self._periodic_running.discard(name)

    # --- changing ------------------------------------------------------------------------------

    def _log(self, name: str, message: str, stream: str = "stdout") -> None:
        add_deployment_log(self._db, name, message, stream)

    def _new_token(self, chosen: str | None) -> tuple[str, str, str]:
        if chosen is not None and (not isinstance(chosen, str) or len(chosen) < MIN_CHOSEN_TOKEN_LENGTH):
            raise InvalidInput(f"endpoint_token must be a string of at least {MIN_CHOSEN_TOKEN_LENGTH} characters.")
        token = chosen or generate_token()
        return token, hash_token(token), self._box.seal(token)

    def create(self, body: dict[str, Any]) -> Deployment:
        name = validate_name("deployment name", body.get("name"))
        options = rules.check_options(name, body)
        scaling = check_scaling(body, options.mode, self._settings.max_pods_per_deployment)
        if name in RESERVED_NAMES or options.endpoint_url_path in RESERVED_PATHS:
            raise InvalidInput(
                f"{name!r} / {options.endpoint_url_path!r}: the names {', '.join(RESERVED_NAMES)} and "
                f"the endpoint paths {', '.join(RESERVED_PATHS)} are used by the platform itself."
            )
        pipeline = self._pipelines.get(body.get("pipeline_name") or "")
        if pipeline.status != READY:
            raise Conflict(f"Pipeline {pipeline.name!r} is {pipeline.status}; deploy it once it is ready.")
        specs, outputs = pipeline_specs(pipeline)
        inputs_mapping = normalize_inputs_mapping(specs, body.get("inputs_mapping"), options.execution_rule)
        outputs_mapping = normalize_outputs_mapping(outputs, body.get("outputs_mapping"), options.execution_rule)
        endpoint = options.execution_rule == ExecutionRule.ENDPOINT
        _, token_hash, sealed = self._new_token(body.get("endpoint_token")) if endpoint else (None, None, None)
        low_latency = options.mode == Mode.LOW_LATENCY
        row = Deployment(
            name=name,
            pipeline_name=pipeline.name,
            execution_rule=options.execution_rule,
            mode=options.mode,
            description=body.get("description"),
            endpoint_url_path=options.endpoint_url_path,
            endpoint_token_hash=token_hash,
            endpoint_token_sealed=sealed,
            inputs_mapping=inputs_mapping,
            outputs_mapping=outputs_mapping,
            enable_parallel_executions=options.enable_parallel_executions,
            max_parallel_executions_per_pod=options.max_parallel_executions_per_pod,
            max_queued_executions=options.max_queued_executions,
            ram_request=options.ram_request,
            gpu_request=options.gpu_request,
            execution_timeout_s=options.execution_timeout_s,
            **(asdict(scaling) if scaling else {}),
            is_enabled=True,
            schedule=options.schedule,
            next_run_at=next_due(options.schedule, utcnow()) if options.schedule else None,
            status=rules.CREATION_PENDING if low_latency else rules.UP,
            has_been_up=not low_latency,
            version=1,
            version_updated_at=utcnow(),
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        with self._db.session() as session:
            if session.get(Deployment, name) is not None:
                raise AlreadyExists(
                    f"A deployment named {name!r} already exists; delete it first or pick another name."
                )
            taken = (
                endpoint
                and session.scalars(
                    select(Deployment.name).where(Deployment.endpoint_url_path == options.endpoint_url_path)
                ).first()
            )
            if taken:
                raise AlreadyExists(
                    f"endpoint_url_path {options.endpoint_url_path!r} is used by deployment {taken!r}; "
                    "choose another endpoint_url_path."
                )
            session.add(row)
        self._on_change()  # a deployment of the same name may have been followed (deleted) before
        self._log(
            name, f"Deployment created ({options.mode}, {options.execution_rule}) from pipeline {pipeline.name!r}."
        )
        if low_latency:
            self._start(row, pipeline)
        else:  # its executions' worker and template start now, not with its first call
            self._executions.prepare(pipeline)
        return row

    def _start(self, row: Deployment, pipeline: Pipeline | None = None) -> None:
        pipeline = pipeline or self._pipelines.get(row.pipeline_name)
        config = rules.ReplicaConfig(
            deployment_name=row.name,
            pipeline_name=pipeline.name,
            function_path=pipeline.function_path,
            function_name=pipeline.function_name,
            credential=self._pod_credential(row.name),
            code_environment=self._code_environment(row.name, row.created_at),
            route_prefix=f"{ENDPOINT_PREFIX}/{row.endpoint_url_path}" if row.endpoint_url_path else None,
            version=row.version,
            outputs=pipeline.outputs,
            inputs_mapping=row.inputs_mapping,
            outputs_mapping=row.outputs_mapping,
            max_parallel_executions=row.max_parallel_executions_per_pod,
            max_queued_executions=row.max_queued_executions,
            execution_timeout_s=row.execution_timeout_s,
            journal_dir=str(self._settings.home_dir / "journal" / row.name),
            reply_after_commit=self._settings.reply_after_commit == "always",
            max_file_bytes=self._settings.max_file_bytes,
            plain_def=bool(pipeline.plain_def),
        )
        try:
            self._serve.deploy(
                config,
                ram_request=row.ram_request,
                gpu_request=row.gpu_request,
                package_uri=pipeline.package_uri,
                requirements=pipeline.requirements,
                scaling=scaling_of(row),
            )
        except Exception as error:
            self._set(row.name, status=rules.CREATION_FAILED)
            self._log(row.name, f"The pod could not be started: {error}", "stderr")
            raise
        # Serve tries again (a reload, new pod settings, a restart): its next failure is a new one,
        # logged by get() when it moves the row to creation_failed again.
        if self._row(row.name).status == rules.CREATION_FAILED:
            self._set(row.name, status=rules.CREATION_PENDING)

    def _set(self, name: str, **values: Any) -> Deployment:
        with self._db.session() as session:
            row = session.get(Deployment, name)
            if row is None:
                raise NotFound(f"Deployment {name!r} does not exist.")
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
        self._on_change()  # pods follow their row: they read it again
        return row

    def update(self, name: str, body: dict[str, Any]) -> Deployment:
        """Enable, disable, give constant inputs new values, or (called with no change on a
        low-latency deployment) reload the pod. A low-latency pod takes new constants by reloading."""
        row = self._row(name)
        unknown = sorted(set(body) - {"is_enabled", "inputs_mapping", "outputs_mapping", "schedule", *SCALING_FIELDS})
        if unknown:
            raise InvalidInput(
                f"update_deployment cannot change {', '.join(unknown)}; it takes is_enabled, "
                f"inputs_mapping, outputs_mapping, schedule and {', '.join(SCALING_FIELDS)}."
            )
        scaling_asked = any(body.get(field) is not None for field in SCALING_FIELDS)
        scaling = (
            check_scaling(body, row.mode, self._settings.max_pods_per_deployment, scaling_of(row))
            if scaling_asked
            else None
        )
        schedule = body.get("schedule")
        if schedule is not None:
            if row.execution_rule != ExecutionRule.PERIODIC:
                raise InvalidInput("schedule only goes with periodic deployments.")
            schedule = parse_schedule(schedule)
        if body.get("outputs_mapping"):
            raise InvalidInput("outputs_mapping cannot be updated; create a new deployment to send outputs elsewhere.")
        enabled = body.get("is_enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise InvalidInput("is_enabled must be true or false.")
        constants = None
        if body.get("inputs_mapping"):  # checked before anything is written
            specs, _ = pipeline_specs(self._pipelines.get(row.pipeline_name))
            constants = with_constants(row.inputs_mapping, specs, body["inputs_mapping"])
        if scaling is not None and scaling != scaling_of(row):
            row = self._set(name, **asdict(scaling))
            self._log(name, f"Pod settings changed: {describe_scaling(scaling)}.")
        if constants is not None:
            row = self._set(name, inputs_mapping=constants)
            self._log(
                name, "Constant inputs updated" + (": reloading the pod." if row.mode == Mode.LOW_LATENCY else ".")
            )
        if schedule is not None:  # counts from its next due time
            row = self._set(name, schedule=schedule, next_run_at=next_due(schedule, utcnow()))
            self._log(name, f"Schedule changed to {schedule!r} ({human_readable(schedule)}).")
        low_latency = row.mode == Mode.LOW_LATENCY
        if enabled is False:
            if row.is_enabled:
                row = self._set(name, is_enabled=False, status=rules.DISABLED)
                if low_latency:
                    self._wait_for_pods(name, Pod.status == PodStatus.RUNNING)
                    self._serve.delete(name)
                self._log(
                    name,
                    "Deployment disabled: calls are refused" + (" and the pod is stopped." if low_latency else "."),
                )
            return row
        if enabled is True and not row.is_enabled:
            # A periodic deployment starts again from its next due time: no catch-up for the pause.
            row = self._set(
                name,
                is_enabled=True,
                status=rules.CREATION_PENDING if low_latency else rules.UP,
                has_been_up=not low_latency,
                version=row.version + 1,
                version_updated_at=utcnow(),
                next_run_at=next_due(row.schedule, utcnow()) if row.schedule else None,
            )
            self._log(name, "Deployment enabled" + (": starting a new pod." if low_latency else "."))
            if low_latency:
                self._start(row)
            return row
        if low_latency and row.is_enabled and (body.get("inputs_mapping") or (schedule is None and not scaling_asked)):
            # New constants, or no change asked: reload the pods (re-import the module), a new version.
            row = self._set(name, version=row.version + 1, version_updated_at=utcnow())
            self._log(name, f"Reloading the pods (version {row.version}).")
            self._start(row)
        elif low_latency and row.is_enabled and scaling_asked:
            self._start(row)  # the same version: Serve applies the new pod counts to the running pods
        return row

    def rotate_token(self, name: str, chosen: str | None = None) -> str:
        """A new endpoint token; the old one stops working once this returns."""
        row = self._row(name)
        if row.execution_rule != ExecutionRule.ENDPOINT:
            raise InvalidInput(f"Deployment {name!r} is not an endpoint; it has no endpoint token.")
        token, token_hash, sealed = self._new_token(chosen)
        row = self._set(name, endpoint_token_hash=token_hash, endpoint_token_sealed=sealed)
        if (
            row.mode == Mode.LOW_LATENCY
            and row.is_enabled
            and not self._wait_for_pods(
                name,
                Pod.status == PodStatus.RUNNING,
                Pod.token_fingerprint.is_(None) | (Pod.token_fingerprint != token_hash[:16]),
            )
        ):
            raise PlatformFailure(
                f"The token of {name!r} was replaced, but a pod has not confirmed it yet, so the "
                "old token may still work there for a moment; get_deployment shows the pods."
            )
        self._log(name, "Endpoint token rotated.")
        return token

    def _wait_for_pods(self, name: str, *behind: Any) -> bool:
        # The change was told to the pods where it was written (_set, delete).
        return wait_until_no_pod(self._db, Pod.deployment_name == name, *behind)

    def delete(self, name: str) -> Deployment:
        """Delete the row first: pods watch it and refuse calls (404) before this returns."""
        row = self._row(name)
        with self._db.session() as session:
            session.execute(delete(DeploymentLog).where(DeploymentLog.deployment_name == name))
            session.execute(delete(Deployment).where(Deployment.name == name))
        self._on_change()  # its pods refuse calls once they see it
        if row.mode == Mode.LOW_LATENCY:
            self._wait_for_pods(name, Pod.status == PodStatus.RUNNING)
            self._serve.delete(name)
        with self._db.session() as session:
            session.execute(delete(Pod).where(Pod.deployment_name == name))
        return row

    def delete_for_pipeline(self, pipeline_name: str, force: bool) -> builtins.list[dict[str, str]]:
        rows = self.list_for_pipeline(pipeline_name)
        if rows and not force:
            names = ", ".join(repr(r.name) for r in rows)
            raise Conflict(
                f"Pipeline {pipeline_name!r} is used by deployment(s) {names}; delete them first or pass "
                "force_deployments_deletion=True."
            )
        return [{"name": self.delete(r.name).name, "execution_rule": r.execution_rule} for r in rows]

    def reconcile(self) -> int:
        """Start every enabled low-latency deployment that Serve is not running (after a restart)."""
        running = self._serve.states()
        started = 0
        for row in self.list():
            if row.mode == Mode.LOW_LATENCY and row.is_enabled and row.name not in running:
                self._log(row.name, "Platform started: restoring the pod.")
                try:
                    self._start(row)
                    started += 1
                except Exception:
                    logger.exception("could not restore deployment %s", row.name)
        return started
