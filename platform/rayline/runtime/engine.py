"""A warm pod's execution engine: slots, start, timeout, log scope and record, with no Serve in it.

The pod (``serve_apps.low_latency``) is a thin Serve adapter over this: it reads requests and
maps outcomes to HTTP; everything between (inputs, a slot, the call, the outputs, the records)
happens here, driven by plain asyncio, so that tests can drive it with a fake record writer.

An ``async def`` function runs on the event loop (in its execution's own task when it has no
timeout, else as a task of its own, which a timeout can cancel), a ``def`` one in a thread of a pool;
``ExecutionSlots`` lets at most ``max_parallel_executions`` run at once and queues the rest, in
arrival order, up to ``max_queued_executions``. The slot is held by the running function itself,
so a timed-out thread (Python cannot stop one) keeps its slot until it really returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from rayline.domain.deployments import ReplicaConfig, timed_out_error
from rayline.domain.files import DataStoreFile, FileValue, materialize
from rayline.domain.mappings import gather_inputs
from rayline.domain.outcomes import Busy, Ended, Outcome, Refused
from rayline.domain.results import OutputContract, failure_text
from rayline.domain.statuses import ExecutionStatus
from rayline.errors import InvalidInput, Unavailable
from rayline.execution_context import ExecutionScope, current_scope
from rayline.runtime.data_store_files import fetch_inputs, store_outputs
from rayline.runtime.execution_ids import ExecutionIds
from rayline.runtime.execution_slots import ExecutionSlots
from rayline.runtime.user_code import argument_filler, call_function
from rayline.store.record_writer import utcnow

# How long a durable reply waits for its records' commit (the control plane may be restarting).
COMMIT_WAIT_S = 60.0


class Records(Protocol):
    """What the engine records through (``rayline.store.record_writer.RecordWriter``)."""

    def execution_started(
        self,
        execution_id: str,
        pipeline_name: str,
        deployment_name: str,
        inputs: list[dict[str, Any]],
        created_at: Any,
        pod_id: str | None = None,
    ) -> None: ...
    def execution_finished(
        self, execution_id: str, status: str, outputs: list[dict[str, Any]] | None, error: str | None
    ) -> None: ...
    def execution_log(self, execution_id: str, stream: str, message: str) -> None: ...
    def files(self, execution_id: str, direction: str, files: dict[str, Any]) -> None: ...
    def committed(self) -> Future: ...


class ExecutionEngine:
    def __init__(
        self,
        config: ReplicaConfig,
        function: Callable[..., Any],
        records: Records,
        ids: ExecutionIds,
        *,
        pod_id: str,
        environment: Callable[[], dict[str, str]],
        apply_environment: Callable[[], None] = lambda: None,
        log: Callable[[str, str], None],
        durable_replies: bool = False,
    ) -> None:
        self._config = config
        # Answer only once the execution's records are committed (a pod whose journal would not
        # outlive its node): what a caller was answered survives the node.
        self._durable_replies = durable_replies
        self._function = function
        self._fill = argument_filler(function)
        self._records = records
        self._ids = ids
        self._pod_id = pod_id
        self._environment = environment  # the environment variables, for the inputs mapped to them
        self._apply_environment = apply_environment  # ...and set in os.environ at each execution start
        self._log = log  # a line of the deployment's logs: (message, stream)
        self._contract = OutputContract.of(config.outputs, config.outputs_mapping, config.max_file_bytes)
        self.is_coroutine = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            getattr(function, "__call__", None)  # noqa: B004 - the method: an object with an async __call__
        )
        # Threads for `def` functions, never more than the slots let run (timed-out ones included).
        self._threads = ThreadPoolExecutor(
            max_workers=config.max_parallel_executions, thread_name_prefix="rayline-execution"
        )
        self.slots = ExecutionSlots(config.max_parallel_executions, config.max_queued_executions)
        self._executions: set[asyncio.Future] = set()
        self._timed_out_threads: set[asyncio.Future] = set()
        self._unfinished: set[str] = set()  # started, not yet recorded as ended

    # --- admission -------------------------------------------------------------------------------

    def busy(self) -> Busy:
        slots, name = self.slots, self._config.deployment_name
        return Busy(
            f"Deployment {name!r} is busy: {slots.running} execution(s) run, its limit per pod, "
            f"and {slots.waiting} wait, the most it queues (max_queued_executions). Retry "
            "later, or deploy it with a higher max_parallel_executions_per_pod or "
            "max_queued_executions.",
            slots.retry_after_s(),
        )

    async def run(self, given: dict[str, Any], *, admitted: bool = False) -> Outcome:
        """Check the inputs, wait for a slot, run one execution. ``admitted``: the caller took its
        place with ``slots.admit()`` before reading its request (it never gets Busy then)."""
        place = self.slots.reserve(admitted=admitted)
        if place is None:
            return self.busy()
        try:
            values, records = gather_inputs(self._config.inputs_mapping, given, self._environment())
        except InvalidInput as error:
            self.slots.give_back(place)
            return Refused(error.message)
        # Once accepted, an execution runs to its end and is recorded even if its caller goes away.
        execution = asyncio.ensure_future(self._execute(place, values, records))
        self._executions.add(execution)
        execution.add_done_callback(self._executions.discard)
        ended = await asyncio.shield(execution)
        if self._durable_replies:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._records.committed())), COMMIT_WAIT_S)
            except Exception as error:  # TimeoutError, or the writer's: no answer it cannot keep
                raise Unavailable(
                    f"Execution {ended.execution_id} ended, but its records could not be saved within "
                    f"{COMMIT_WAIT_S:g} s ({type(error).__name__}); the platform may be restarting. Its "
                    "record may still appear: look for it with get_pipeline_execution before calling again."
                ) from None
        return ended

    # --- one execution ---------------------------------------------------------------------------

    async def _execute(self, place: asyncio.Future, values: dict[str, Any], inputs: list[dict[str, Any]]) -> Ended:
        await self.slots.wait(place)
        try:
            self._apply_environment()
            execution_id = self._ids.next_nowait() or await self._ids.next()
        except BaseException:
            self.slots.release()
            raise
        config = self._config
        self._records.execution_started(
            execution_id, config.pipeline_name, config.deployment_name, inputs, utcnow(), self._pod_id
        )
        self._unfinished.add(execution_id)
        scope = ExecutionScope(
            execution_id, lambda stream, line: self._records.execution_log(execution_id, stream, line)
        )
        folder: Path | None = None
        try:
            if any(isinstance(value, FileValue) for value in values.values()):  # kept with the execution
                self._records.files(execution_id, "input", values)
            if any(isinstance(value, DataStoreFile) for value in values.values()):  # off the loop: HTTP
                values = await asyncio.to_thread(fetch_inputs, values, config.max_file_bytes, config.code_environment)
            if any(isinstance(value, FileValue) for value in values.values()):  # the function gets paths
                folder = Path(tempfile.mkdtemp(prefix=f"rayline-{execution_id}-"))
                values = materialize(values, folder)
            # An `async def` without a timeout runs in this very task: no second task to create,
            # wake and wait for (profiled: a sixth of the engine's time per call).
            inline = self.is_coroutine and config.execution_timeout_s is None
            call = None if inline else self._start_call(scope, values)
        except BaseException as exc:  # it never started: its slot is free again and its record ends
            self.slots.release()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            # A data store input that cannot be read is the user's to fix (Failed), not the platform's.
            status = ExecutionStatus.FAILED if isinstance(exc, InvalidInput) else ExecutionStatus.ERROR
            failure = (
                exc.message
                if isinstance(exc, InvalidInput)
                else f"The execution could not start: {type(exc).__name__}: {exc}"
            )
            self._records.execution_log(execution_id, "stderr", failure)
            self._unfinished.discard(execution_id)
            self._records.execution_finished(execution_id, status, None, failure)
            return Ended(execution_id, status, error=failure)
        began = time.monotonic()
        timeout_s = config.execution_timeout_s
        if call is None:
            ran: asyncio.Future | None = None
            try:
                ran = await self._run_inline(scope, values)
            finally:
                if ran is None:  # the coroutine was closed mid-call (GeneratorExit): its slot is free all the same
                    self.slots.release(time.monotonic() - began)
                    if folder is not None:
                        shutil.rmtree(folder, ignore_errors=True)
            call = ran
            self._call_ended(call, scope, time.monotonic() - began)
            done = True
        else:
            ran = call  # for the callback: a name the type checker knows is set
            call.add_done_callback(lambda _: self._call_ended(ran, scope, time.monotonic() - began))
            if timeout_s is None:  # what asyncio.wait does, without its sets and timer (a tenth of the engine's time)
                ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                call.add_done_callback(lambda _: None if ended.done() else ended.set_result(None))
                await ended
                done = True
            else:
                done = bool((await asyncio.wait({call}, timeout=timeout_s))[0])
        if folder is not None:  # the input files: once outputs are read, or once a timed-out call ends
            call.add_done_callback(lambda _: shutil.rmtree(folder, ignore_errors=True))
        if not done:
            assert timeout_s is not None  # without a timeout, asyncio.wait returns once the call is done
            error = self._time_out(call, execution_id, timeout_s)
            return self._ended(scope, ExecutionStatus.FAILED, error=error, timed_out=True)
        try:
            settled = self._contract.settle(call.result())
            if settled.to_data_store:
                await asyncio.to_thread(store_outputs, settled.to_data_store, config.code_environment)
        except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything
            for line in traceback.format_exc().rstrip().split("\n"):
                self._records.execution_log(execution_id, "stderr", line)
            self._log(f"Execution {execution_id} failed: {type(exc).__name__}: {exc}", "stderr")
            return self._ended(scope, ExecutionStatus.FAILED, error=failure_text(exc))
        scope.drain()
        if settled.files:  # not journaled: a file is too big for a journal line
            self._records.files(execution_id, "output", settled.files)
        return self._ended(scope, ExecutionStatus.SUCCEEDED, settled.records, output=settled.returned)

    def _ended(
        self,
        scope: ExecutionScope,
        status: ExecutionStatus,
        records: list[dict[str, Any]] | None = None,
        *,
        output: dict[str, Any] | None = None,
        error: str | None = None,
        timed_out: bool = False,
    ) -> Ended:
        scope.drain()  # the execution's last lines before its end
        execution_id = scope.execution_id
        assert execution_id is not None
        if execution_id not in self._unfinished:  # abandoned when the pod stopped
            return Ended(execution_id, ExecutionStatus.ERROR, error="The pod stopped before this execution ended.")
        self._unfinished.discard(execution_id)
        self._records.execution_finished(execution_id, status, records, error)
        return Ended(execution_id, status, output or {}, error, timed_out)

    def abandon(self, reason: str) -> list[str]:
        """The pod stops: executions still running end in Error with ``reason`` (recorded now,
        while the pod can still record); they are not recorded again if they end after all."""
        abandoned = sorted(self._unfinished)
        self._unfinished.clear()
        for execution_id in abandoned:
            self._records.execution_finished(execution_id, ExecutionStatus.ERROR, None, reason)
        return abandoned

    def _start_call(self, scope: ExecutionScope, values: dict[str, Any]) -> asyncio.Future:
        """The user's function, started in the execution's scope: a coroutine as a task on this
        event loop, a plain function in a thread of the pool (never on the loop)."""
        context = contextvars.copy_context()
        context.run(current_scope.set, scope)
        loop = asyncio.get_running_loop()
        if self.is_coroutine:
            return loop.create_task(self._await_function(values), context=context)
        return loop.run_in_executor(self._threads, context.run, call_function, self._function, values, self._fill)

    async def _run_inline(self, scope: ExecutionScope, values: dict[str, Any]) -> asyncio.Future:
        """The coroutine function run in the calling task, in the execution's scope; its outcome
        as a done future, as a task of its own would have ended."""
        outcome: asyncio.Future = asyncio.get_running_loop().create_future()
        token = current_scope.set(scope)
        try:
            outcome.set_result(await self._await_function(values))
        except asyncio.CancelledError:
            # The user's code cancelled itself, or the pod stops: either way the execution ends
            # (Failed, or as the pod's abandon() recorded it) and frees its slot, as a task's would.
            outcome.cancel()
        except GeneratorExit:
            outcome.cancel()
            raise
        except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything: settled by the caller
            outcome.set_exception(exc)
        finally:
            current_scope.reset(token)
        return outcome

    async def _await_function(self, values: dict[str, Any]) -> Any:
        # Called inside the task, so that wrong arguments fail the execution like any user error.
        return await self._function(**self._fill(values))

    def _time_out(self, call: asyncio.Future, execution_id: str, timeout_s: float) -> str:
        if self.is_coroutine:
            call.cancel()  # its slot is released once the cancellation has unwound it
            return timed_out_error(timeout_s, " and was cancelled.")
        self._timed_out_threads.add(call)
        self._log(
            f"Execution {execution_id} exceeded execution_timeout_s={timeout_s:g} s. Python cannot stop a "
            f"thread: it still runs and holds one of the {self.slots.limit} execution slot(s) until it "
            "returns.",
            "stderr",
        )
        return timed_out_error(
            timeout_s,
            "; its caller was answered, but its thread cannot be stopped and runs on "
            "(its further logs still come here).",
        )

    def _call_ended(self, call: asyncio.Future, scope: ExecutionScope, duration_s: float) -> None:
        self.slots.release(duration_s)
        if call in self._timed_out_threads:
            self._timed_out_threads.discard(call)
            scope.drain()
            self._log(
                f"The thread of timed-out execution {scope.execution_id} ended after {duration_s:.1f} s; "
                "its slot is free again.",
                "stdout",
            )
        if not call.cancelled():
            call.exception()  # retrieved, so asyncio does not warn about a result nobody awaited
