"""A low-latency deployment: one Ray Serve application whose warm replica imports the pipeline's
module once and runs every execution in-process, sharing its globals.

HTTP goes from Serve's ingress straight to this replica (route prefix ``/endpoints/<path>``).
An ``async def`` function runs as a task on the replica's event loop, a ``def`` one in a thread;
``ExecutionSlots`` lets at most ``max_parallel_executions_per_pod`` run at once and queues the
rest, in arrival order, up to ``max_queued_executions``.
The replica runs user code, so it holds no database URL, key or token: it records and follows
its deployment through the control plane (``rayline.services.pod_gateway``), with a credential
that only allows that. It follows its deployment with a long poll (answered at once when the
control plane changes something, else about every ``FOLLOW_HOLD_S``): a rotated token takes
effect without a restart, and a disabled or deleted deployment is refused at once; it reports
what it applies in its pod row, which the control plane waits for. Records and logs go through a
background batch writer with a journal, off the response's path; a pod that starts replays the
journals of the pods that died, and ends what they were running.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import inspect
import logging
import os
import shutil
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, overload

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rayline.api.http_io import output_response, read_inputs
from rayline.domain.deployments import ReplicaConfig, failure_for_caller, timed_out_error
from rayline.domain.environment import apply as apply_environment
from rayline.domain.files import FileValue, materialize
from rayline.domain.io_types import OutputSpec, check_outputs
from rayline.domain.mappings import gather_inputs, kept_files, place_outputs
from rayline.domain.tokens import ENDPOINT_TOKEN_REFUSED, token_matches
from rayline.errors import InvalidInput, PayloadTooLarge, PlatformFailure, RaylineError
from rayline.execution_context import ExecutionScope, current_scope
from rayline.runtime.control_plane_link import ControlPlaneLink
from rayline.runtime.execution_slots import ExecutionSlots
from rayline.runtime.log_capture import follow_executions_into_threads, install_routing
from rayline.runtime.worker import call_function, call_kwargs, load_function
from rayline.store import executions as store
from rayline.store.models import utcnow
from rayline.store.record_writer import Event, RecordWriter, replay_orphans

logger = logging.getLogger(__name__)

ID_BLOCK = 100
FOLLOW_HOLD_S = 10.0  # an idle pod asks the control plane about its deployment once per hold
LOAD_REPORT_S = 0.2  # how often running/waiting counts are reported, when they changed
# Room above running + waiting for calls being refused, so that a refusal is never queued by Serve.
REFUSALS_IN_FLIGHT = 16


def _error(status: int, message: str | None, name: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, "name": name, **extra}, status_code=status)


class LowLatencyReplica:
    def __init__(self, config: ReplicaConfig) -> None:
        self._config = config
        self._pod_id = serve.get_replica_context().replica_id.unique_id
        self._stop = threading.Event()  # first: __del__ relies on it whatever fails below
        self._link = ControlPlaneLink(config.control_plane_app, config.credential)
        journals = Path(config.journal_dir)
        # What pods that died had not committed; their ids, to end what they were running.
        dead_pods = replay_orphans(self._write_records, journals)
        self._writer = RecordWriter(self._write_records, journals / f"{self._pod_id}.journal")
        self._token_hash: str | None = None
        self._refusing: str | None = None  # "disabled" or "deleted" once the pod sees it
        self._unreported: dict[str, Any] = {}  # applied, not yet in the pod row (a report failed)
        # The environment variables as last loaded (version, values), and as set in os.environ.
        self._environment: tuple[int, dict[str, str]] = (0, {})
        self._applied_environment: tuple[int, dict[str, str]] = (0, {})
        self._outputs = [OutputSpec(**spec) for spec in config.outputs]
        self._ids: collections.deque[int] = collections.deque()
        self._ids_lock = threading.Lock()
        self._ids_ready = threading.Condition(self._ids_lock)
        self._refilling = True
        self._take_id_block()
        # Threads for `def` functions, never more than the slots let run (timed-out ones included).
        self._executor = ThreadPoolExecutor(
            max_workers=config.max_parallel_executions, thread_name_prefix="rayline-execution"
        )
        self._slots = ExecutionSlots(config.max_parallel_executions, config.max_queued_executions)
        self._executions: set[asyncio.Future] = set()
        self._timed_out_threads: set[asyncio.Future] = set()
        self._deployment_scope = ExecutionScope(None, self._deployment_line)
        install_routing(self._deployment_scope)
        follow_executions_into_threads()
        self._link.call("register_pod", config.deployment_name, self._pod_id, config.version, dead_pods)
        self._log(f"Pod {self._pod_id} created (version {config.version}).")
        if dead_pods:
            self._log(
                f"Pod(s) {', '.join(dead_pods)} stopped unexpectedly; their records are saved and what "
                "they were running ended in Error.",
                "stderr",
            )
        self._follow(hold_s=0)
        self._apply_environment()  # module-level code may read it too
        self._function = self._import()
        self._is_coroutine = inspect.iscoroutinefunction(self._function) or inspect.iscoroutinefunction(
            getattr(self._function, "__call__", None)  # noqa: B004 - the method: an object with an async __call__
        )
        threading.Thread(target=self._follow_loop, name="rayline-follow", daemon=True).start()
        threading.Thread(target=self._report_load_loop, name="rayline-load", daemon=True).start()

    # --- start-up ----------------------------------------------------------------------------

    def _log(self, message: str, stream: str = "stdout") -> None:
        self._writer.deployment_log(self._config.deployment_name, message, stream, self._pod_id)

    def _deployment_line(self, stream: str, line: str) -> None:
        self._log(line, stream)

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

    def _update_pod(self, **fields: Any) -> None:
        self._link.call("update_pod", self._config.deployment_name, self._pod_id, fields)

    def _set_pod_status(self, status: str) -> None:
        # After the records queued before it, as the pod's life is told in that order.
        self._writer.flush()
        self._update_pod(status=status)

    def _import(self):
        config = self._config
        # A private copy of the package: Ray's extracted working_dir is shared by the node.
        self._workdir = Path(tempfile.mkdtemp(prefix=f"rayline-{config.deployment_name}-")) / "pipeline"
        shutil.copytree(Path.cwd(), self._workdir, symlinks=True)
        os.chdir(self._workdir)
        self._log(f"Importing pipeline module {config.function_path}...")
        began = time.perf_counter()
        try:
            function = load_function(self._workdir, config.function_path, config.function_name)
        except BaseException:
            self._deployment_scope.drain()
            self._log(f"Importing {config.function_path} failed:\n{traceback.format_exc()}", "stderr")
            self._set_pod_status("failed")
            raise
        self._deployment_scope.drain()
        self._log(f"Module imported in {time.perf_counter() - began:.2f} s; {config.function_name} is ready.")
        self._set_pod_status("running")
        return function

    def _follow(self, hold_s: float) -> None:
        """Ask the control plane what the pod follows (its token, whether it is still enabled or
        deleted, the environment variables), held up to ``hold_s`` while nothing changes; then
        report what the pod now applies in its pod row, which the control plane waits for."""
        if self._unreported:  # what a failed report did not tell yet
            self._update_pod(**self._unreported)
            self._unreported = {}
        known = (self._token_hash, self._refusing, self._environment[0])
        state = self._link.call("pod_sync", self._config.deployment_name, known, hold_s, timeout_s=hold_s + 30)
        if (state["token_hash"], state["refusing"], state["environment_version"]) == known:
            return
        # Applied at once (an old token is refused from now on), reported after.
        report: dict[str, Any] = {}
        if state["environment"] is not None:
            self._environment = (state["environment_version"], state["environment"])
            report["environment_version"] = state["environment_version"]
        if state["token_hash"] != self._token_hash or state["refusing"] != self._refusing:
            self._token_hash, self._refusing = state["token_hash"], state["refusing"]
            report["token_fingerprint"] = self._token_hash[:16] if self._token_hash else None
            if self._refusing:
                report["status"] = "stopping"
        self._unreported = report
        if report:
            self._update_pod(**report)
            self._unreported = {}

    def _apply_environment(self) -> None:
        """Set the environment variables last loaded in os.environ (at each execution start)."""
        loaded = self._environment
        if loaded[0] != self._applied_environment[0]:
            apply_environment(loaded[1], self._applied_environment[1])
            self._applied_environment = loaded

    def _follow_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._follow(FOLLOW_HOLD_S)
                failures = 0
            except Exception:  # the control plane may be restarting: retry, and say so once
                failures += 1
                if failures == 1:
                    logger.exception("pod %s could not reach the control plane; retrying", self._pod_id)
                self._stop.wait(min(5.0, 0.2 * failures))

    def _report_load_loop(self) -> None:
        reported = (0, 0)
        while not self._stop.wait(LOAD_REPORT_S):
            load = (self._slots.running, self._slots.waiting)
            if load == reported:
                continue
            try:
                self._update_pod(running_executions=load[0], waiting_executions=load[1])
                reported = load
            except Exception:
                logger.warning("pod %s could not report its load; retrying", self._pod_id, exc_info=True)

    def __del__(self) -> None:
        try:
            self._stop.set()
            self._log(f"Pod {self._pod_id} stopping.")
            self._set_pod_status("stopped")
            self._writer.close()
            self._link.close()
        except Exception:
            logger.warning("pod %s did not stop cleanly", getattr(self, "_pod_id", "?"), exc_info=True)

    # --- serving -----------------------------------------------------------------------------

    def _take_id_block(self) -> None:
        try:
            numbers = self._link.call("take_ids", self._config.deployment_name, ID_BLOCK)
            with self._ids_lock:
                self._ids.extend(numbers)
        finally:
            with self._ids_lock:
                self._refilling = False
                self._ids_ready.notify_all()

    @overload
    def _next_execution_id(self, wait: Literal[True]) -> str: ...
    @overload
    def _next_execution_id(self, wait: bool) -> str | None: ...
    def _next_execution_id(self, wait: bool) -> str | None:
        """Numbers are taken in blocks (the first at start-up), the next one in the background
        before the current one runs out, so a call does not wait for the control plane. Only
        after a burst that emptied the block does a call wait for the next one (``wait``, on a
        thread: never on the event loop)."""
        deadline = time.monotonic() + 60
        with self._ids_lock:
            while True:
                number = self._ids.popleft() if self._ids else None
                if len(self._ids) < ID_BLOCK // 2 and not self._refilling:
                    self._refilling = True
                    threading.Thread(target=self._take_id_block, daemon=True).start()
                if number is not None:
                    return f"{self._config.deployment_name}-{number}"
                if not wait:
                    return None
                if time.monotonic() > deadline:
                    raise PlatformFailure("No execution number could be had from the control plane for 60 s.")
                self._ids_ready.wait(1.0)

    async def __call__(self, request: Request) -> Response:
        # The token first, whatever the method or path (a deleted deployment has none): a caller
        # without it learns nothing, not even that a warm deployment is here.
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "EndpointToken" or not token_matches(token.strip(), self._token_hash):
            return JSONResponse(
                {"message": ENDPOINT_TOKEN_REFUSED, "name": "Unauthorized"},
                status_code=401,
                headers={"WWW-Authenticate": "EndpointToken"},
            )
        if request.url.path.rstrip("/") != self._config.route_prefix or request.method != "POST":
            return _error(
                404 if request.method == "POST" else 405,
                f"Call this endpoint with POST {self._config.route_prefix}.",
                "NotFound",
            )
        if self._refusing == "disabled":
            return _error(
                503,
                f"Deployment {self._config.deployment_name!r} is disabled; enable it with "
                f"update_deployment({self._config.deployment_name!r}, is_enabled=True).",
                "Unavailable",
            )
        # Admitted first, so that a full pod refuses at once, before reading any body; the slot
        # (or the place in the queue) is taken once the body is read.
        if not self._slots.admit():
            result = self._busy()
        else:
            try:
                given = await read_inputs(request, self._config.max_file_bytes)
            except (InvalidInput, PayloadTooLarge) as error:
                self._slots.leave()
                return _error(413 if isinstance(error, PayloadTooLarge) else 400, error.message, error.name)
            except BaseException:  # the caller left while sending its body
                self._slots.leave()
                raise
            result = await self._run(given, self._slots.reserve(admitted=True))
        status = result["status"]
        if status == store.SUCCEEDED:
            return output_response(result["execution_id"], result["output"])
        if status == "refused":
            return _error(400, result["message"], "InvalidInput")
        if status == "busy":
            return JSONResponse(
                {"message": result["message"], "name": "Unavailable"},
                status_code=503,
                headers={"Retry-After": str(result["retry_after_s"])},
            )
        if result.get("timed_out"):
            return _error(504, result["error"], "ExecutionTimedOut", execution_id=result["execution_id"])
        return _error(
            500,
            failure_for_caller(result["execution_id"], status, result["error"]),
            "ExecutionFailed",
            execution_id=result["execution_id"],
        )

    async def run(self, given: Any) -> dict[str, Any]:
        """Check the inputs, wait for a slot, run one execution. Called through a handle by the
        API. Returns ``{"status": "refused", "message"}`` for bad inputs and ``{"status":
        "busy", "message", "retry_after_s"}`` when the queue is full; no execution is recorded then."""
        place = self._slots.reserve()
        return self._busy() if place is None else await self._run(given, place)

    async def flush(self) -> None:
        """Called through a handle by the API when it misses a record of this pod: what the pod
        answered is committed once this returns."""
        await asyncio.to_thread(self._writer.flush)

    def _busy(self) -> dict[str, Any]:
        slots, name = self._slots, self._config.deployment_name
        return {
            "status": "busy",
            "retry_after_s": slots.retry_after_s(),
            "message": f"Deployment {name!r} is busy: {slots.running} execution(s) run, its limit per pod, "
            f"and {slots.waiting} wait, the most it queues (max_queued_executions). Retry "
            "later, or deploy it with a higher max_parallel_executions_per_pod or "
            "max_queued_executions.",
        }

    async def _run(self, given: Any, place: asyncio.Future) -> dict[str, Any]:
        try:
            values, records = gather_inputs(self._config.inputs_mapping, given, self._environment[1])
        except InvalidInput as error:
            self._slots.give_back(place)
            return {"status": "refused", "message": error.message}
        # Once accepted, an execution runs to its end and is recorded even if its caller goes away.
        execution = asyncio.ensure_future(self._execute(place, values, records))
        self._executions.add(execution)
        execution.add_done_callback(self._executions.discard)
        return await asyncio.shield(execution)

    async def _execute(
        self, place: asyncio.Future, values: dict[str, Any], records: list[dict[str, Any]]
    ) -> dict[str, Any]:
        await self._slots.wait(place)
        folder: Path | None = None
        try:
            self._apply_environment()
            execution_id = self._next_execution_id(wait=False)
            if execution_id is None:
                execution_id = await asyncio.to_thread(self._next_execution_id, True)
        except BaseException:
            self._slots.release()
            raise
        self._writer.execution_started(
            execution_id, self._config.pipeline_name, self._config.deployment_name, records, utcnow(), self._pod_id
        )
        self._log(f"Execution {execution_id} started.")
        scope = ExecutionScope(
            execution_id, lambda stream, line: self._writer.execution_log(execution_id, stream, line)
        )
        try:
            if any(isinstance(value, FileValue) for value in values.values()):  # the function gets paths
                self._writer.files(execution_id, "input", values)
                folder = Path(tempfile.mkdtemp(prefix=f"rayline-{execution_id}-"))
                values = materialize(values, folder)
            call = self._start_call(scope, values)
        except BaseException as exc:  # it never started: its slot is free again and its record ends
            self._slots.release()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            failure = f"The execution could not start: {type(exc).__name__}: {exc}"
            self._writer.execution_finished(execution_id, store.ERROR, None, failure)
            return {"execution_id": execution_id, "status": store.ERROR, "error": failure}
        began = time.monotonic()
        timeout_s = self._config.execution_timeout_s
        call.add_done_callback(lambda _: self._call_ended(call, scope, time.monotonic() - began))
        outputs: dict[str, Any] | None = None
        error: str | None = None
        done, _ = await asyncio.wait({call}, timeout=timeout_s)
        if not done:
            assert timeout_s is not None  # without a timeout, asyncio.wait returns once the call is done
            error = self._time_out(call, execution_id, timeout_s)
        else:
            try:
                outputs = check_outputs(self._outputs, call.result(), self._config.max_file_bytes)
            except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything
                for line in traceback.format_exc().rstrip().split("\n"):
                    self._writer.execution_log(execution_id, "stderr", line)
                self._log(f"Execution {execution_id} failed: {type(exc).__name__}: {exc}", "stderr")
                error = f"{type(exc).__name__}: {exc}. The traceback is in the execution's logs."
        if folder is not None:  # the input files: once outputs are read, or once a timed-out call ends
            call.add_done_callback(lambda _: shutil.rmtree(folder, ignore_errors=True))
        scope.drain()
        if error is None:
            assert outputs is not None  # set whenever error is not
            returned, output_records = place_outputs(self._config.outputs_mapping, outputs)
            files = kept_files(output_records, outputs)
            if files:  # not journaled: a file is too big for a journal line
                self._writer.files(execution_id, "output", files)
            self._writer.execution_finished(execution_id, store.SUCCEEDED, output_records, None)
            return {"execution_id": execution_id, "status": store.SUCCEEDED, "output": returned}
        self._writer.execution_finished(execution_id, store.FAILED, None, error)
        return {"execution_id": execution_id, "status": store.FAILED, "error": error, "timed_out": not done}

    def _start_call(self, scope: ExecutionScope, values: dict[str, Any]) -> asyncio.Future:
        """The user's function, started in the execution's scope: a coroutine as a task on this
        event loop, a plain function in a thread of the pool (never on the loop)."""
        context = contextvars.copy_context()
        context.run(current_scope.set, scope)
        loop = asyncio.get_running_loop()
        if self._is_coroutine:
            return loop.create_task(self._await_function(values), context=context)
        return loop.run_in_executor(self._executor, context.run, call_function, self._function, values)

    async def _await_function(self, values: dict[str, Any]) -> Any:
        # Called inside the task, so that wrong arguments fail the execution like any user error.
        return await self._function(**call_kwargs(self._function, values))

    def _time_out(self, call: asyncio.Future, execution_id: str, timeout_s: float) -> str:
        if self._is_coroutine:
            call.cancel()  # its slot is released once the cancellation has unwound it
            return timed_out_error(timeout_s, " and was cancelled.")
        self._timed_out_threads.add(call)
        self._log(
            f"Execution {execution_id} exceeded execution_timeout_s={timeout_s:g} s. Python cannot stop a "
            f"thread: it still runs and holds one of the {self._slots.limit} execution slot(s) until it "
            "returns.",
            "stderr",
        )
        return timed_out_error(
            timeout_s,
            "; its caller was answered, but its thread cannot be stopped and runs on "
            "(its further logs still come here).",
        )

    def _call_ended(self, call: asyncio.Future, scope: ExecutionScope, duration_s: float) -> None:
        self._slots.release(duration_s)
        if call in self._timed_out_threads:
            self._timed_out_threads.discard(call)
            scope.drain()
            self._log(
                f"The thread of timed-out execution {scope.execution_id} ended after {duration_s:.1f} s; "
                "its slot is free again."
            )
        if not call.cancelled():
            call.exception()  # retrieved, so asyncio does not warn about a result nobody awaited


def build(config: ReplicaConfig, *, ray_actor_options: dict[str, Any]):
    # As a decorator: that is how Ray types it (serve.deployment(cls, ...) is the same call).
    deployment = serve.deployment(
        name="pipeline",
        num_replicas=1,
        # Serve lets through what may run or wait here; the replica's slots gate what runs, and
        # refuse past the queue with a JSON message and a Retry-After Serve could not give.
        max_ongoing_requests=config.max_parallel_executions + config.max_queued_executions + REFUSALS_IN_FLIGHT,
        ray_actor_options=ray_actor_options,
        health_check_period_s=5,
        graceful_shutdown_timeout_s=5,
    )(LowLatencyReplica)
    return deployment.bind(config)
