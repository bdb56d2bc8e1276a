"""A warm pod's execution engine: slots, start, timeout, log scope and record, with no Serve in it.

The pod (``serve_apps.low_latency``) is a thin Serve adapter over this: it reads requests and
maps outcomes to HTTP; everything between (inputs, a slot, the call, the outputs, the records)
happens here, driven by plain asyncio, so that tests can drive it with a fake record writer.

An ``async def`` execution runs on the event loop (in its own task when it has no timeout,
else its function runs as a task of its own, which a timeout can cancel). A ``def`` execution runs
whole (its id, records, the call, its outputs) in a thread of a pool of ``max_parallel_executions``
threads, whose queue is the slots' queue: a thread that ends an execution takes the next waiting
one itself, with no round trip through the event loop in between (the slots count it as running
a moment later, once the loop has seen the one before end). ``ExecutionSlots`` lets at most
``max_parallel_executions`` run at once and queues the rest, in arrival order, up to
``max_queued_executions``. The slot is held by the running function itself, so a timed-out thread
(Python cannot stop one) keeps its slot until it really returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from rayline.domain.deployments import ReplicaConfig, timed_out_error
from rayline.domain.files import DataStoreFile, FileValue, materialize
from rayline.domain.mappings import gather_inputs, writes_to_data_store
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
        self._stores_outputs = writes_to_data_store(config.outputs_mapping)
        self.is_coroutine = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            getattr(function, "__call__", None)  # noqa: B004 - the method: an object with an async __call__
        )
        # Threads for `def` executions, as many as slots: the pool's queue is the slots' queue.
        self._threads = ThreadPoolExecutor(
            max_workers=config.max_parallel_executions, thread_name_prefix="rayline-execution"
        )
        self.slots = ExecutionSlots(config.max_parallel_executions, config.max_queued_executions)
        self._executions: set[asyncio.Future] = set()
        self._unfinished: set[str] = set()  # started, not yet recorded as ended
        # `def` executions start and end in their threads, abandon() comes from another: each
        # record of a start or an end is made under this lock, with _unfinished and _stopped.
        self._ending = threading.Lock()
        self._stopped = False

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
        execution = (
            asyncio.ensure_future(self._execute(place, values, records))
            if self.is_coroutine
            else self._in_thread(values, records)
        )
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

    # --- an `async def` execution, on the event loop -----------------------------------------------

    async def _execute(self, place: asyncio.Future, values: dict[str, Any], inputs: list[dict[str, Any]]) -> Ended:
        await self.slots.wait(place)
        try:
            self._apply_environment()
            scope = self._started(self._ids.next_nowait() or await self._ids.next(), inputs)
        except BaseException:
            self.slots.release()
            raise
        execution_id, config = scope.execution_id, self._config
        assert execution_id is not None
        folder: Path | None = None
        try:
            if any(isinstance(value, DataStoreFile) for value in values.values()):  # off the loop: HTTP
                values, folder = await asyncio.to_thread(self._inputs_ready, execution_id, values)
            else:
                values, folder = self._inputs_ready(execution_id, values)
            # Without a timeout, the function runs in this very task: no second task to create,
            # wake and wait for (profiled: a sixth of the engine's time per call).
            call = None if config.execution_timeout_s is None else self._start_task(scope, values)
        except BaseException as exc:  # it never started: its slot is free again and its record ends
            self.slots.release()
            return self._not_started(scope, exc, folder)
        began = time.monotonic()
        if call is None:
            ran: asyncio.Future | None = None
            try:
                ran = await self._run_inline(scope, values)
            finally:
                if ran is None:  # the coroutine was closed mid-call (GeneratorExit): its slot is free all the same
                    self.slots.release(time.monotonic() - began)
                    _remove(folder)
            call = ran
            self._call_ended(call, time.monotonic() - began)
        else:
            task = call  # for the callback: a name the type checker knows is set
            call.add_done_callback(lambda _: self._call_ended(task, time.monotonic() - began))
            timeout_s = config.execution_timeout_s
            assert timeout_s is not None
            if not (await asyncio.wait({call}, timeout=timeout_s))[0]:
                call.cancel()  # its slot is released once the cancellation has unwound it
                call.add_done_callback(lambda _: _remove(folder))  # the input files, once it has
                error = timed_out_error(timeout_s, " and was cancelled.")
                return self._ended(scope, ExecutionStatus.FAILED, error=error, timed_out=True)
        try:
            returned = call.result()
        except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything
            _remove(folder)
            return self._failed(scope, exc)
        try:
            if self._stores_outputs:  # off the loop: HTTP
                return await asyncio.to_thread(self._finish, scope, returned)
            return self._finish(scope, returned)
        finally:
            _remove(folder)  # the input files, once the outputs (which may be among them) are read

    def _start_task(self, scope: ExecutionScope, values: dict[str, Any]) -> asyncio.Future:
        """The coroutine function as a task on this event loop, in the execution's scope."""
        context = contextvars.copy_context()
        context.run(current_scope.set, scope)
        return asyncio.get_running_loop().create_task(self._await_function(values), context=context)

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

    def _call_ended(self, call: asyncio.Future, duration_s: float | None) -> None:
        self.slots.release(duration_s)
        if not call.cancelled():
            call.exception()  # retrieved, so asyncio does not warn about a result nobody awaited

    # --- a `def` execution, whole in a thread ------------------------------------------------------

    def _in_thread(self, values: dict[str, Any], inputs: list[dict[str, Any]]) -> asyncio.Future:
        """The execution, submitted to the pool; its Ended to come. Its place was reserved in the
        slots, and the pool takes executions in the same order with as many threads as slots: it
        starts once a thread is free (the thread takes it as it ends the one before). The slot is
        released once the thread has really returned. Without a timeout, the caller awaits the
        thread's own future: no task to create and wake per call."""
        loop = asyncio.get_running_loop()
        job = _ThreadJob(loop, timed=self._config.execution_timeout_s is not None)
        context = contextvars.copy_context()  # its own: the thread sets the execution's scope in it
        call = loop.run_in_executor(self._threads, context.run, self._execute_here, job, values, inputs)
        call.add_done_callback(lambda _: self._thread_returned(call, job))
        return call if job.called is None else asyncio.ensure_future(self._timed(call, job))

    async def _timed(self, call: asyncio.Future, job: _ThreadJob) -> Ended:
        """The thread's Ended, or a timeout's once its function has run execution_timeout_s."""
        timeout_s = self._config.execution_timeout_s
        assert timeout_s is not None and job.called is not None
        await asyncio.wait({job.called, call}, return_when=asyncio.FIRST_COMPLETED)
        left_s = job.began + timeout_s - time.monotonic()
        if not call.done() and not (await asyncio.wait({call}, timeout=max(left_s, 0)))[0] and job.time_out():
            assert job.scope is not None
            self._log(
                f"Execution {job.scope.execution_id} exceeded execution_timeout_s={timeout_s:g} s. Python cannot "
                f"stop a thread: it still runs and holds one of the {self.slots.limit} execution slot(s) until "
                "it returns.",
                "stderr",
            )
            error = timed_out_error(
                timeout_s,
                "; its caller was answered, but its thread cannot be stopped and runs on "
                "(its further logs still come here).",
            )
            return self._ended(job.scope, ExecutionStatus.FAILED, error=error, timed_out=True)
        return await call

    def _execute_here(self, job: _ThreadJob, values: dict[str, Any], inputs: list[dict[str, Any]]) -> Ended:
        """The execution, in this thread (in its own context): what `_execute` does on the loop."""
        self._apply_environment()
        scope = job.scope = self._started(self._ids.wait(), inputs)
        assert scope.execution_id is not None
        try:
            values, folder = self._inputs_ready(scope.execution_id, values)
        except BaseException as exc:  # it never started
            return self._not_started(scope, exc, None)
        token = current_scope.set(scope)  # the function's, not the platform's work after it
        try:
            job.call_starts()
            returned, error = call_function(self._function, values, self._fill), None
        except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything
            returned, error = None, exc
        finally:
            current_scope.reset(token)
        try:
            if not job.returns():  # timed out: its caller was answered, and its record ended
                return Ended(scope.execution_id, ExecutionStatus.FAILED, timed_out=True)
            return self._finish(scope, returned) if error is None else self._failed(scope, error)
        finally:
            error = None  # its traceback holds this frame: no cycle left for the collector
            _remove(folder)  # the input files, once the outputs (which may be among them) are read
            job.duration_s = time.monotonic() - job.began  # how long it held its slot, for Retry-After

    def _thread_returned(self, call: asyncio.Future, job: _ThreadJob) -> None:
        self._call_ended(call, job.duration_s)
        if job.timed_out:
            assert job.scope is not None and job.duration_s is not None
            job.scope.drain()
            self._log(
                f"The thread of timed-out execution {job.scope.execution_id} ended after {job.duration_s:.1f} s; "
                "its slot is free again.",
                "stdout",
            )

    # --- what both kinds share ---------------------------------------------------------------------

    def _started(self, execution_id: str, inputs: list[dict[str, Any]]) -> ExecutionScope:
        config = self._config
        with self._ending:
            if self._stopped:  # it waited until its pod stopped: it never runs, nor is recorded
                raise Unavailable(
                    f"The pod of deployment {config.deployment_name!r} stopped before this execution could "
                    "start; nothing was recorded for it. Call again."
                )
            self._records.execution_started(
                execution_id, config.pipeline_name, config.deployment_name, inputs, utcnow(), self._pod_id
            )
            self._unfinished.add(execution_id)
        return ExecutionScope(
            execution_id, lambda stream, line: self._records.execution_log(execution_id, stream, line)
        )

    def _inputs_ready(self, execution_id: str, values: dict[str, Any]) -> tuple[dict[str, Any], Path | None]:
        """The inputs as the function takes them (data store objects read, files as paths in a
        folder of their own, returned to be removed once the execution is done)."""
        if any(isinstance(value, FileValue) for value in values.values()):  # kept with the execution
            self._records.files(execution_id, "input", values)
        if any(isinstance(value, DataStoreFile) for value in values.values()):
            values = fetch_inputs(values, self._config.max_file_bytes, self._config.code_environment)
        if not any(isinstance(value, FileValue) for value in values.values()):
            return values, None
        folder = Path(tempfile.mkdtemp(prefix=f"rayline-{execution_id}-"))
        try:
            return materialize(values, folder), folder
        except BaseException:
            _remove(folder)
            raise

    def _not_started(self, scope: ExecutionScope, exc: BaseException, folder: Path | None) -> Ended:
        _remove(folder)
        # A data store input that cannot be read is the user's to fix (Failed), not the platform's.
        if isinstance(exc, InvalidInput):
            status, failure = ExecutionStatus.FAILED, exc.message
        else:
            status, failure = ExecutionStatus.ERROR, f"The execution could not start: {type(exc).__name__}: {exc}"
        assert scope.execution_id is not None
        self._records.execution_log(scope.execution_id, "stderr", failure)
        return self._ended(scope, status, error=failure)

    def _failed(self, scope: ExecutionScope, exc: BaseException) -> Ended:
        execution_id = scope.execution_id
        assert execution_id is not None
        for line in "".join(traceback.format_exception(exc)).rstrip().split("\n"):
            self._records.execution_log(execution_id, "stderr", line)
        self._log(f"Execution {execution_id} failed: {type(exc).__name__}: {exc}", "stderr")
        return self._ended(scope, ExecutionStatus.FAILED, error=failure_text(exc))

    def _finish(self, scope: ExecutionScope, returned: Any) -> Ended:
        """What the function returned, checked against its outputs (those for the data store
        written there: blocking HTTP), and the execution's end: Succeeded, or Failed."""
        try:
            settled = self._contract.settle(returned)
            if settled.to_data_store:
                store_outputs(settled.to_data_store, self._config.code_environment)
        except BaseException as exc:  # noqa: BLE001 - what the user's code returned may raise anything
            return self._failed(scope, exc)
        scope.drain()
        if settled.files:  # not journaled: a file is too big for a journal line
            assert scope.execution_id is not None
            self._records.files(scope.execution_id, "output", settled.files)
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
        with self._ending:
            if execution_id not in self._unfinished:  # abandoned when the pod stopped
                return Ended(execution_id, ExecutionStatus.ERROR, error="The pod stopped before this execution ended.")
            self._unfinished.discard(execution_id)
            self._records.execution_finished(execution_id, status, records, error)
        return Ended(execution_id, status, output or {}, error, timed_out)

    def abandon(self, reason: str) -> list[str]:
        """The pod stops: executions still running end in Error with ``reason`` (recorded now,
        while the pod can still record); they are not recorded again if they end after all."""
        with self._ending:
            self._stopped = True  # what still waits for a slot will not start
            abandoned = sorted(self._unfinished)
            self._unfinished.clear()
            for execution_id in abandoned:
                self._records.execution_finished(execution_id, ExecutionStatus.ERROR, None, reason)
        return abandoned


class _ThreadJob:
    """What the event loop and the thread of one `def` execution share: when its function was
    called (``called``, a future of the loop, only when a timeout is to be counted from then),
    and which came first, its return or its timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, timed: bool) -> None:
        self._loop = loop
        self.called: asyncio.Future | None = loop.create_future() if timed else None
        self.scope: ExecutionScope | None = None
        self.began = 0.0  # monotonic, once called
        self.duration_s: float | None = None  # once it has ended, from its call
        self.timed_out = False
        self._returned = False
        self._lock = threading.Lock()

    def call_starts(self) -> None:  # in the thread
        self.began = time.monotonic()
        if self.called is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed (the pod stops): no timeout to count
                self._loop.call_soon_threadsafe(_resolve, self.called)

    def returns(self) -> bool:  # in the thread: False when its timeout came first
        with self._lock:
            self._returned = True
            return not self.timed_out

    def time_out(self) -> bool:  # on the loop: False when its function returned first
        with self._lock:
            self.timed_out = not self._returned
            return self.timed_out


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _remove(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
