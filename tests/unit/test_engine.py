"""A warm pod's execution engine (rayline.runtime.engine), driven by plain asyncio with a fake
record writer and execution numbers from a fake control plane: no Serve, no Ray, no database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pytest

from rayline.domain.deployments import TIMED_OUT, ReplicaConfig
from rayline.domain.io_types import InputSpec, OutputSpec
from rayline.domain.mappings import normalize_inputs_mapping, normalize_outputs_mapping
from rayline.domain.outcomes import Busy, Ended, Refused
from rayline.domain.statuses import ExecutionStatus
from rayline.errors import Unavailable
from rayline.execution_context import current_execution_id
from rayline.runtime.engine import ExecutionEngine
from rayline.runtime.execution_ids import ExecutionIds

SUCCEEDED, FAILED, ERROR = ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.ERROR
INPUTS, OUTPUTS = [InputSpec("x", "number")], [OutputSpec("y", "number")]


class Records:
    """The engine's record writer and its deployment log (``log``), collecting what they get."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []  # started and finished, in order
        self.lines: list[tuple[str, str, str]] = []  # (execution id, stream, line)
        self.files_kept: list[tuple[str, str, dict[str, Any]]] = []
        self.deployment_log: list[tuple[str, str]] = []  # (stream, message)
        self.on_log: Callable[[str], None] = lambda message: None
        self.commits: list[tuple[int, Any]] = []  # (records made before it, its future)

    def execution_started(self, execution_id, pipeline_name, deployment_name, inputs, created_at, pod_id=None):
        self.calls.append(("started", execution_id, pipeline_name, deployment_name, inputs, pod_id))

    def execution_finished(self, execution_id, status, outputs, error):
        self.calls.append(("finished", execution_id, status, outputs, error))

    def execution_log(self, execution_id, stream, message):
        self.lines.append((execution_id, stream, message))

    def files(self, execution_id, direction, files):
        self.files_kept.append((execution_id, direction, files))

    def committed(self):
        """A commit on its way: the test completes it (``commits``), as the writer's thread would."""
        from concurrent.futures import Future

        future: Future = Future()
        self.commits.append((len(self.calls), future))
        return future

    def log(self, message: str, stream: str) -> None:
        self.deployment_log.append((stream, message))
        self.on_log(message)

    def started(self) -> list[str]:
        return [call[1] for call in self.calls if call[0] == "started"]


class Blocks:
    """The control plane's execution numbers (``take_block``): consecutive, from 1. Every block
    after the first waits for ``gate`` when one is given; ``asked`` is set once one is asked for."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.gate = gate
        self.asked = threading.Event()
        self._next = 1

    def __call__(self, count: int) -> list[int]:
        self.sizes.append(count)
        if len(self.sizes) > 1:
            self.asked.set()
            if self.gate is not None:
                assert self.gate.wait(5)
        numbers = list(range(self._next, self._next + count))
        self._next += count
        return numbers


async def until(condition: Callable[[], Any], timeout_s: float = 5.0) -> None:
    """Wait until ``condition()`` is true, or fail the test after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "the condition never came true"
        await asyncio.sleep(0.01)


def engine_for(
    function: Callable[..., Any],
    records: Records,
    *,
    ids: ExecutionIds | None = None,
    parallel: int = 1,
    queued: int = 0,
    timeout_s: float | None = None,
    apply_environment: Callable[[], None] = lambda: None,
    durable_replies: bool = False,
) -> ExecutionEngine:
    config = ReplicaConfig(
        deployment_name="report",
        pipeline_name="pipe",
        function_path="main.py",
        function_name="handler",
        credential="pod-credential",
        route_prefix="/endpoints/report",
        version=1,
        outputs=[asdict(spec) for spec in OUTPUTS],
        inputs_mapping=normalize_inputs_mapping(INPUTS, None, "endpoint"),
        outputs_mapping=normalize_outputs_mapping(OUTPUTS, None, "endpoint"),
        max_parallel_executions=parallel,
        max_queued_executions=queued,
        execution_timeout_s=timeout_s,
    )
    return ExecutionEngine(
        config,
        function,
        records,
        ids or ExecutionIds("report", Blocks()),
        pod_id="pod-1",
        environment=dict,
        apply_environment=apply_environment,
        log=records.log,
        durable_replies=durable_replies,
    )


def test_a_durable_reply_waits_for_the_commit_of_the_executions_records():
    async def scenario():
        records = Records()
        engine = engine_for(lambda x: {"y": x * 2}, records, durable_replies=True)
        reply = asyncio.ensure_future(engine.run({"x": 2}))
        while not records.commits:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert not reply.done()  # ended and recorded, but not answered before the commit
        made_before, commit = records.commits[0]
        assert made_before == 2 and records.calls[1][0] == "finished"  # its start and its end
        commit.set_result(None)
        assert (await reply).output == {"y": 4}

        failing = asyncio.ensure_future(engine.run({"x": 3}))
        while len(records.commits) < 2:
            await asyncio.sleep(0.01)
        records.commits[1][1].set_exception(OSError("the writer failed"))
        with pytest.raises(Unavailable, match="could not be saved"):  # never an answer it cannot keep
            await failing

        plain = Records()
        assert (await engine_for(lambda x: {"y": x}, plain).run({"x": 1})).status == SUCCEEDED
        assert plain.commits == []  # a pod whose journal outlives it answers at once

    asyncio.run(scenario())


def test_the_environment_variables_are_set_at_each_execution_start():
    applied: list[str] = []
    seen: list[int] = []

    def handler(x):
        seen.append(len(applied))  # set before the function runs
        return {"y": x}

    async def scenario():
        engine = engine_for(handler, Records(), apply_environment=lambda: applied.append("applied"))
        await engine.run({"x": 1})
        await engine.run({"x": 2})

    asyncio.run(scenario())
    assert applied == ["applied", "applied"] and seen == [1, 2]


def input_records(x: Any) -> list[dict[str, Any]]:
    mapping = {"endpoint_input_name": "x", "is_required": True}
    return [
        {
            "pipeline_input_name": "x",
            "data_type": "number",
            "mapping_type": "endpoint",
            "mapping_value": mapping,
            "value": x,
        }
    ]


def output_records(y: Any) -> list[dict[str, Any]]:
    mapping = {"endpoint_output_name": "y"}
    return [
        {
            "pipeline_output_name": "y",
            "data_type": "number",
            "mapping_type": "endpoint",
            "mapping_value": mapping,
            "value": y,
        }
    ]


def test_a_def_function_runs_on_a_thread_and_its_start_then_end_are_recorded():
    seen = []

    def double(x):
        seen.append((current_execution_id(), threading.current_thread().name))
        return {"y": x * 2}

    async def scenario():
        records = Records()
        engine = engine_for(double, records)
        assert not engine.is_coroutine
        assert await engine.run({"x": 3}) == Ended("report-1", SUCCEEDED, {"y": 6})
        assert records.calls == [
            ("started", "report-1", "pipe", "report", input_records(3), "pod-1"),
            ("finished", "report-1", SUCCEEDED, output_records(6), None),
        ]
        assert records.deployment_log == []  # an execution is in its own record, not in the pod's log
        assert engine.slots.running == 0
        (execution_id, thread), *_ = seen
        assert execution_id == "report-1" and thread.startswith("rayline-execution")

    asyncio.run(scenario())


def test_an_async_def_function_runs_on_the_event_loop():
    seen = []

    async def double(x):
        await asyncio.sleep(0)
        seen.append((current_execution_id(), threading.current_thread() is threading.main_thread()))
        return {"y": x * 2}

    async def scenario():
        records = Records()
        engine = engine_for(double, records)
        assert engine.is_coroutine
        assert await engine.run({"x": 4}) == Ended("report-1", SUCCEEDED, {"y": 8})
        assert [call[0] for call in records.calls] == ["started", "finished"]
        assert seen == [("report-1", True)]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        (ValueError("boom"), "ValueError: boom"),
        ({"z": 1}, "ValueError: The function returned undeclared output(s) ['z']; declared: ['y']."),
    ],
)
def test_a_failure_ends_failed_with_the_traceback_in_the_executions_logs(returned, error):
    def handler(x):
        if isinstance(returned, Exception):
            raise returned
        return returned

    async def scenario():
        records = Records()
        outcome = await engine_for(handler, records).run({"x": 1})
        sentence = error if error.endswith(".") else f"{error}."
        assert outcome == Ended("report-1", FAILED, {}, f"{sentence} The traceback is in the execution's logs.")
        assert records.calls[-1] == ("finished", "report-1", FAILED, None, outcome.error)
        lines = [
            line for execution_id, stream, line in records.lines if (execution_id, stream) == ("report-1", "stderr")
        ]
        assert lines[0] == "Traceback (most recent call last):" and lines[-1] == error
        assert records.deployment_log[-1] == ("stderr", f"Execution report-1 failed: {error}")

    asyncio.run(scenario())


def test_at_most_max_parallel_executions_run_the_next_wait_in_order_and_past_the_queue_busy():
    release, started, lock = threading.Event(), threading.Semaphore(0), threading.Lock()
    running, peak = [0], [0]

    def held(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        started.release()
        assert release.wait(5)
        with lock:
            running[0] -= 1
        return {"y": x}

    async def scenario():
        records = Records()
        engine = engine_for(held, records, parallel=2, queued=1)
        calls = [asyncio.ensure_future(engine.run({"x": x})) for x in range(3)]
        for _ in range(2):
            assert await asyncio.to_thread(started.acquire, timeout=5)
        assert (engine.slots.running, engine.slots.waiting) == (2, 1)
        assert records.started() == ["report-1", "report-2"]  # the third waits for a slot, unrecorded

        busy = await engine.run({"x": 9})
        assert isinstance(busy, Busy) and busy.retry_after_s >= 1
        assert busy.message.startswith("Deployment 'report' is busy: 2 execution(s) run, its limit per pod, and 1 wait")
        assert "max_queued_executions" in busy.message

        release.set()
        outcomes = await asyncio.gather(*calls)
        assert [(o.execution_id, o.output) for o in outcomes] == [
            ("report-1", {"y": 0}),
            ("report-2", {"y": 1}),
            ("report-3", {"y": 2}),
        ]
        assert peak == [2] and records.started() == ["report-1", "report-2", "report-3"]
        assert (engine.slots.running, engine.slots.waiting) == (0, 0)

    asyncio.run(scenario())


def test_a_def_thread_that_ends_an_execution_starts_the_next_waiting_one_without_the_event_loop():
    first_may_end, ran = threading.Event(), []
    all_ran = threading.Event()

    def handler(x):
        if x == 0:
            assert first_may_end.wait(5)
        ran.append((x, current_execution_id()))
        if len(ran) == 3:
            all_ran.set()
        return {"y": x}

    async def scenario():
        records = Records()
        engine = engine_for(handler, records, queued=2)
        calls = [asyncio.ensure_future(engine.run({"x": x})) for x in range(3)]
        await until(records.started)
        assert (engine.slots.running, engine.slots.waiting) == (1, 2)
        # The event loop is held from here on: only the execution thread can start the next two.
        first_may_end.set()
        assert all_ran.wait(5)
        assert ran == [(0, "report-1"), (1, "report-2"), (2, "report-3")]
        outcomes = await asyncio.gather(*calls)
        assert [outcome.output for outcome in outcomes] == [{"y": 0}, {"y": 1}, {"y": 2}]
        assert (engine.slots.running, engine.slots.waiting) == (0, 0)

    asyncio.run(scenario())


def test_a_timed_out_def_answers_its_caller_but_holds_its_slot_until_its_thread_returns():
    release = threading.Event()

    def stuck(x):
        assert release.wait(5)
        return {"y": x}

    async def scenario():
        records = Records()
        freed = asyncio.Event()
        records.on_log = lambda message: freed.set() if "its slot is free again" in message else None
        engine = engine_for(stuck, records, timeout_s=0.05)

        outcome = await engine.run({"x": 1})
        assert outcome.timed_out and outcome.status == FAILED and outcome.execution_id == "report-1"
        assert outcome.error.startswith(f"{TIMED_OUT}0.05 s; its caller was answered, but its thread cannot be stopped")
        assert records.calls[-1] == ("finished", "report-1", FAILED, None, outcome.error)
        assert "exceeded execution_timeout_s=0.05 s. Python cannot stop a thread" in records.deployment_log[-1][1]
        assert engine.slots.running == 1
        assert isinstance(await engine.run({"x": 2}), Busy)  # its thread still runs in the one slot

        release.set()
        await asyncio.wait_for(freed.wait(), 5)
        assert engine.slots.running == 0
        assert await engine.run({"x": 3}) == Ended("report-2", SUCCEEDED, {"y": 3})

    asyncio.run(scenario())


def test_a_queued_defs_timeout_counts_from_the_start_of_its_function_not_from_its_arrival():
    release = threading.Event()

    def handler(x):
        if x == 1:
            assert release.wait(5)
        return {"y": x}

    async def scenario():
        records = Records()
        engine = engine_for(handler, records, queued=1, timeout_s=0.2)
        first = await engine.run({"x": 1})  # times out, and its thread holds the one slot
        assert first.timed_out
        second = asyncio.ensure_future(engine.run({"x": 2}))
        await asyncio.sleep(1.0)  # five timeouts of waiting for the slot
        assert not second.done() and engine.slots.waiting == 1
        release.set()
        assert await asyncio.wait_for(second, 5) == Ended("report-2", SUCCEEDED, {"y": 2})

    asyncio.run(scenario())


@pytest.mark.parametrize("timeout_s", [None, 5.0])
def test_a_def_that_cannot_start_frees_its_slot_with_or_without_a_timeout(timeout_s):
    failing = [True]

    def apply_environment():
        if failing[0]:
            failing[0] = False
            raise OSError("environment refused")

    async def scenario():
        records = Records()
        engine = engine_for(lambda x: {"y": x}, records, timeout_s=timeout_s, apply_environment=apply_environment)
        with pytest.raises(OSError, match="environment refused"):
            await engine.run({"x": 1})
        assert engine.slots.running == 0 and records.calls == []
        assert await engine.run({"x": 2}) == Ended("report-1", SUCCEEDED, {"y": 2})

    asyncio.run(scenario())


def test_a_def_still_waiting_when_the_pod_stops_never_starts_nor_is_recorded():
    release = threading.Event()

    def handler(x):
        assert release.wait(5)
        return {"y": x}

    async def scenario():
        records = Records()
        engine = engine_for(handler, records, queued=1)
        running = asyncio.ensure_future(engine.run({"x": 1}))
        waiting = asyncio.ensure_future(engine.run({"x": 2}))
        await until(records.started)
        assert engine.abandon("The pod stopped.") == ["report-1"]
        release.set()
        assert (await running).status == ERROR
        with pytest.raises(Unavailable, match="stopped before this execution could start"):
            await waiting
        assert records.started() == ["report-1"]  # the waiting one has no record

    asyncio.run(scenario())


def test_a_timed_out_async_def_is_cancelled_and_frees_its_slot():
    cancelled = []

    async def stuck(x):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(current_execution_id())
            raise

    async def scenario():
        records = Records()
        engine = engine_for(stuck, records, timeout_s=0.05)
        outcome = await engine.run({"x": 1})
        assert outcome.timed_out and outcome.error == f"{TIMED_OUT}0.05 s and was cancelled."
        for _ in range(100):  # the cancellation unwinds at the loop's next turns
            if not engine.slots.running:
                break
            await asyncio.sleep(0)
        assert engine.slots.running == 0 and cancelled == ["report-1"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"x": "two"}, "Input 'x': expected a number, got str 'two'."),
        ({}, "Input 'x' (number) is required; give it a value."),
        ({"x": 1, "z": 2}, "Unknown input(s) 'z': this accepts x."),
    ],
)
def test_bad_inputs_are_refused_with_nothing_recorded(given, message):
    called = []

    async def scenario():
        records = Records()
        engine = engine_for(lambda x: called.append(x) or {"y": x}, records)
        assert await engine.run(given) == Refused(message)
        assert (records.calls, records.lines, records.deployment_log, called) == ([], [], [], [])
        assert engine.slots.running == 0
        assert (await engine.run({"x": 1})).execution_id == "report-1"  # no number was used

    asyncio.run(scenario())


def test_ids_come_in_order_from_blocks_refilled_in_the_background():
    async def scenario():
        blocks = Blocks()
        records = Records()
        engine = engine_for(lambda x: {"y": x}, records, ids=ExecutionIds("report", blocks, block=4))
        assert blocks.sizes == [4]  # the first block at start-up
        outcomes = [await engine.run({"x": x}) for x in range(6)]
        assert [o.execution_id for o in outcomes] == [f"report-{n}" for n in range(1, 7)]
        # The next one taken once the first ran low, before it ran out; twice as big, as the
        # first lasted less than a second.
        assert blocks.sizes == [4, 8]

    asyncio.run(scenario())


def test_a_call_that_finds_the_block_empty_waits_for_the_next_one():
    gate = threading.Event()

    async def scenario():
        blocks = Blocks(gate)
        records = Records()
        engine = engine_for(lambda x: {"y": x}, records, ids=ExecutionIds("report", blocks, block=2))
        for n in (1, 2):
            assert (await engine.run({"x": n})).execution_id == f"report-{n}"
        assert await asyncio.to_thread(blocks.asked.wait, 5)  # the refill has started, held by the gate
        third = asyncio.ensure_future(engine.run({"x": 3}))
        await asyncio.sleep(0)
        assert not third.done() and records.started() == ["report-1", "report-2"]
        gate.set()
        assert await asyncio.wait_for(third, 5) == Ended("report-3", SUCCEEDED, {"y": 3})

    asyncio.run(scenario())


def test_an_execution_still_running_when_the_pod_stops_ends_in_error_once():
    release = threading.Event()

    def handler(x):
        release.wait(5)
        return {"y": x}

    async def scenario():
        records = Records()
        engine = engine_for(handler, records)
        running = asyncio.ensure_future(engine.run({"x": 1}))
        await until(records.started)
        assert engine.abandon("The pod stopped.") == ["report-1"]
        release.set()
        outcome = await running
        return records, outcome

    records, outcome = asyncio.run(scenario())
    finished = [call for call in records.calls if call[0] == "finished"]
    assert finished == [("finished", "report-1", ERROR, None, "The pod stopped.")]  # not recorded again
    assert outcome.status == ERROR


def test_an_async_def_that_cancels_itself_or_exits_ends_failed_and_frees_its_slot():
    async def wayward(x):
        if x == 1:
            asyncio.current_task().cancel()  # what a library that never uncancels leaves behind
            await asyncio.sleep(0)
        if x == 2:
            raise SystemExit(3)  # a task's would stop the pod's event loop
        return {"y": x}

    async def scenario():
        records = Records()
        engine = engine_for(wayward, records)
        for x in (1, 2):
            ended = await engine.run({"x": x})
            assert ended.status == FAILED, ended
        assert engine.slots.running == 0  # each freed its slot: the next one runs
        assert await engine.run({"x": 5}) == Ended("report-3", SUCCEEDED, {"y": 5})

    asyncio.run(scenario())
