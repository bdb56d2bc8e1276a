"""A low-latency deployment: one Ray Serve application whose warm pod imports the pipeline's
module once and runs every execution in-process, sharing its globals.

This module is the thin Serve adapter: HTTP goes from Serve's ingress straight to this replica
(route prefix ``/endpoints/<path>``), which checks the endpoint token, reads the inputs and maps
the outcome to HTTP (``rayline.api.http_errors``). The execution itself (slots, the call, its
timeout, its records) is ``rayline.runtime.engine``; what the pod follows of its deployment (its
token, enable/disable, environment variables) is ``rayline.runtime.pod_follower``.
The pod runs user code, so it holds no database URL, key or token: it records and follows its
deployment through the control plane (``rayline.services.pod_gateway``), with a credential that
only allows that. Records and logs go through a background batch writer with a journal, off the
response's path on the control plane's node; a pod on another node answers once its call's
records are committed, since its journal would not outlive the node. A pod that starts replays
the journals of the pods that died on its node, and ends what they were running; the control
plane ends what the pods of a lost node were running.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from rayline.api.http_errors import error_response, outcome_response, rayline_error_response
from rayline.api.http_io import read_inputs
from rayline.domain.deployments import ReplicaConfig
from rayline.domain.names import POD_SERVE_DEPLOYMENT as POD_DEPLOYMENT  # the app's one Serve deployment
from rayline.domain.outcomes import Outcome
from rayline.domain.statuses import PodStatus
from rayline.domain.tokens import ENDPOINT_TOKEN_REFUSED, bearer_of, token_matches
from rayline.errors import InvalidInput, NotFound, PayloadTooLarge, RaylineError, Unauthorized, Unavailable
from rayline.execution_context import ExecutionScope, expose_to_craft_ai_sdk
from rayline.runtime.cluster_state import node_of_this_process
from rayline.runtime.control_plane_link import ControlPlaneLink
from rayline.runtime.engine import ExecutionEngine
from rayline.runtime.execution_ids import ExecutionIds
from rayline.runtime.log_capture import follow_executions_into_threads, install_routing
from rayline.runtime.pod_follower import PodFollower
from rayline.runtime.user_code import load_function
from rayline.store.record_writer import Event, RecordWriter, replay_orphans

logger = logging.getLogger(__name__)

# What a plain `def`'s pods run with: Serve's main event loop runs the replica's methods too.
PLAIN_DEF_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
# Room above running + waiting for calls being refused, so that a refusal is never queued by Serve.
REFUSALS_IN_FLIGHT = 16
# How long a pod that goes waits for the calls it has, when its deployment has no execution_timeout_s.
DRAIN_WITHOUT_TIMEOUT_S = 300.0
# How long a pod's records wait to share a batch to the control plane. Each batch is a Serve
# call, a few milliseconds of the pod's CPU; readers never wait for it (reading an execution, or
# listing them, has its pods commit first) and the journal keeps what is not sent yet.
RECORD_BATCH_S = 0.25


class LowLatencyReplica:
    def __init__(self, config: ReplicaConfig) -> None:
        self._config = config
        self._pod_id = serve.get_replica_context().replica_id.unique_id
        self._link = ControlPlaneLink(config.control_plane_app, config.credential)
        self._follower = PodFollower(self._link, config.deployment_name, self._pod_id, lambda: self._writer.flush())
        self._node_id, on_head = node_of_this_process()
        # A journal is a file of this node: in RAYLINE_HOME on the control plane's node (which
        # replays them too), else in the node's temporary folder (RAYLINE_HOME may not be there,
        # nor writable by the user code runs as), where pods of other nodes never see it.
        journals = (
            Path(config.journal_dir)
            if on_head
            else Path(tempfile.gettempdir()) / "rayline-journal" / config.deployment_name
        )
        # What pods that died on this node had not committed; their ids, to end what they were running.
        dead_pods = replay_orphans(self._write_records, journals)
        self._writer = RecordWriter(
            self._write_records, journals / f"{self._pod_id}.journal", interval_s=RECORD_BATCH_S
        )
        # Off the control plane's node, a journal dies with the node: calls are answered once
        # their records are committed (see benchmarks/ for the cost).
        self._durable_replies = config.reply_after_commit or not on_head
        self._closed = False
        try:
            self._start(dead_pods)
        except BaseException:  # a failed pod stays failed; what its writer holds is committed
            self._close()
            raise

    # --- start-up and stop -------------------------------------------------------------------

    def _start(self, dead_pods: list[str]) -> None:
        config = self._config
        ids = ExecutionIds(
            config.deployment_name, lambda count: self._link.call("take_ids", config.deployment_name, count)
        )
        self._deployment_scope = ExecutionScope(None, lambda stream, line: self._log(line, stream))
        install_routing(self._deployment_scope)
        follow_executions_into_threads()
        self._link.call("register_pod", config.deployment_name, self._pod_id, config.version, dead_pods, self._node_id)
        self._log(f"Pod {self._pod_id} created (version {config.version}).")
        if dead_pods:
            self._log(
                f"Pod(s) {', '.join(dead_pods)} stopped unexpectedly; their records are saved and what "
                "they were running ended in Error.",
                "stderr",
            )
        self._follower.follow(hold_s=0)
        # How the user code's SDK clients reach the API (its metrics, the data store), before the
        # environment variables (the user's own CRAFT_AI_* win), which module-level code may read.
        os.environ.update(config.code_environment)
        expose_to_craft_ai_sdk()
        self._follower.apply_environment()
        self._engine = ExecutionEngine(
            config,
            self._import(),
            self._writer,
            ids,
            pod_id=self._pod_id,
            environment=self._follower.environment,
            apply_environment=self._follower.apply_environment,
            log=self._log,
            durable_replies=self._durable_replies,
        )
        if config.plain_def and self._engine.is_coroutine:  # rebound where its source did not show it
            self._log(
                f"{config.function_name} is a coroutine function, though {config.function_path} defines it with a "
                "plain def: its coroutines run on the event loop that answers this pod's calls and Serve's health "
                "checks, so they must never block (Serve replaces a pod that misses its health checks).",
                "stderr",
            )
        self._follower.start(lambda: self._engine.slots.load)

    def _log(self, message: str, stream: str = "stdout") -> None:
        self._writer.deployment_log(self._config.deployment_name, message, stream, self._pod_id)

    def _write_records(self, events: list[Event], replaying: bool = False) -> None:
        """The writer's sink. While the control plane cannot be reached (it restarts), the batch
        is retried for as long as it takes: the journal keeps it meanwhile, and is marked
        committed only once it is. A retry skips what an attempt that timed out had written. A
        record the control plane refuses (RaylineError) is not retried."""
        pause = 0.2
        while True:
            try:
                return self._link.call("write_records", self._config.deployment_name, events, replaying)
            except RaylineError:
                raise
            except Exception:
                logger.warning(
                    "pod %s could not send its records; retrying in %.1f s", self._pod_id, pause, exc_info=pause == 0.2
                )
                time.sleep(pause)
                pause, replaying = min(pause * 2, 5.0), True

    def _set_pod_status(self, status: PodStatus) -> None:
        # After the records queued before it, as the pod's life is told in that order.
        self._writer.flush()
        self._follower.update_pod(status=status)

    def _import(self):
        config = self._config
        # A private copy of the package: Ray's extracted working_dir is shared by the node.
        workdir = Path(tempfile.mkdtemp(prefix=f"rayline-{config.deployment_name}-")) / "pipeline"
        shutil.copytree(Path.cwd(), workdir, symlinks=True)
        os.chdir(workdir)
        self._log(f"Importing pipeline module {config.function_path}...")
        began = time.perf_counter()
        try:
            function = load_function(workdir, config.function_path, config.function_name)
        except BaseException:
            self._deployment_scope.drain()
            self._log(f"Importing {config.function_path} failed:\n{traceback.format_exc()}", "stderr")
            self._set_pod_status(PodStatus.FAILED)
            raise
        self._deployment_scope.drain()
        self._log(f"Module imported in {time.perf_counter() - began:.2f} s; {config.function_name} is ready.")
        self._set_pod_status(PodStatus.RUNNING)
        return function

    def _close(self) -> None:
        self._closed = True
        self._follower.stop()
        try:
            self._writer.close()
        finally:
            self._link.close()

    def __del__(self) -> None:
        # Serve's graceful shutdown: calls in flight have been answered (and drained) by now.
        if getattr(self, "_closed", True):  # never started, or closed when its start failed
            return
        self._follower.stop()  # nothing reported after the pod's last status
        try:
            self._log(f"Pod {self._pod_id} stopping.")
            # Calls whose caller waits were drained by Serve; one whose caller left may still run.
            self._engine.abandon("The pod running this execution stopped (scaled down, replaced or disabled) first.")
            self._set_pod_status(PodStatus.STOPPED)
        except Exception:
            logger.warning("pod %s could not record that it stops", self._pod_id, exc_info=True)
        finally:
            self._close()

    # --- serving -----------------------------------------------------------------------------

    async def __call__(self, request: Request) -> Response:
        # The token first, whatever the method or path (a deleted deployment has none): a caller
        # without it learns nothing, not even that a warm deployment is here.
        token = bearer_of(request.headers.get("authorization"), "EndpointToken")
        if not token_matches(token, self._follower.token_hash):
            return rayline_error_response(Unauthorized(ENDPOINT_TOKEN_REFUSED, scheme="EndpointToken"))
        prefix = self._config.route_prefix
        if request.method != "POST":  # as the control plane's route answers it
            message = f"Call this endpoint with POST {prefix}."
            return error_response(405, message, "MethodNotAllowed", headers={"Allow": "POST"})
        if request.scope["path"].rstrip("/") != prefix:  # not request.url: it builds a whole URL
            return rayline_error_response(NotFound(f"Call this endpoint with POST {prefix}."))
        if self._follower.refusing == "disabled":
            name = self._config.deployment_name
            return rayline_error_response(
                Unavailable(
                    f"Deployment {name!r} is disabled; enable it with update_deployment({name!r}, is_enabled=True)."
                )
            )
        # Admitted first, so that a full pod refuses at once, before reading any body; the slot
        # (or the place in the queue) is taken once the body is read.
        engine = self._engine
        if not engine.slots.admit():
            return outcome_response(engine.busy())
        try:
            given = await read_inputs(request, self._config.max_file_bytes)
        except (InvalidInput, PayloadTooLarge) as error:
            engine.slots.leave()
            return rayline_error_response(error)
        except BaseException:  # the caller left while sending its body
            engine.slots.leave()
            raise
        try:
            return outcome_response(await engine.run(given, admitted=True))
        except RaylineError as error:  # its records could not be saved: no answer it cannot keep
            return rayline_error_response(error)

    async def run(self, given: Any) -> Outcome:
        """One execution, called through a handle by the control plane (elastic-like calls, the
        scheduler): Refused for bad inputs, Busy when the queue is full (nothing recorded then)."""
        return await self._engine.run(given)


def build(config: ReplicaConfig, *, ray_actor_options: dict[str, Any], serving: dict[str, Any]):
    """The deployment's Serve application. ``serving``: ``num_replicas`` or ``autoscaling_config``
    (rayline.runtime.serve_deployments)."""
    if config.plain_def:
        # Serve runs a replica's methods on an event loop of their own, a thread hop each way
        # from the one that answers HTTP, so that user code cannot block it. A plain `def` only
        # ever runs in the pod's execution threads: its pods skip those two hops (measured: p50
        # 1.46 -> 1.24 ms for a trivial function), as Serve's throughput-optimized mode does.
        runtime_env = dict(ray_actor_options.get("runtime_env") or {})
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **PLAIN_DEF_ENV}
        ray_actor_options = {**ray_actor_options, "runtime_env": runtime_env}
    # As a decorator: that is how Ray types it (serve.deployment(cls, ...) is the same call).
    deployment = serve.deployment(
        name=POD_DEPLOYMENT,
        # Serve lets through what may run or wait here; the replica's slots gate what runs, and
        # refuse past the queue with a JSON message and a Retry-After Serve could not give.
        max_ongoing_requests=config.max_parallel_executions + config.max_queued_executions + REFUSALS_IN_FLIGHT,
        ray_actor_options=ray_actor_options,
        health_check_period_s=5,
        # Every call is an execution record with its logs; Serve's access log line per request in
        # Ray's log files would say it again, at a tenth of the pod's time per call (profiled).
        # Serve still builds that line's log record unless its logger is above INFO (4 % of the
        # ingress thread, profiled): its warnings and errors stay in Ray's logs.
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
        # A pod that goes (scaled down, replaced, disabled) first finishes the calls it has.
        graceful_shutdown_timeout_s=(config.execution_timeout_s or DRAIN_WITHOUT_TIMEOUT_S) + 5,
        **serving,
    )(LowLatencyReplica)
    # The deployment's version, so that Serve replaces the pods only when it changes (a reload):
    # new pod settings are then applied to the running pods (Serve's lightweight update), where
    # Serve's own random version would restart them all. Serve takes it from its internals only.
    deployment = deployment.options(version=str(config.version), _internal=True)
    return deployment.bind(config)
