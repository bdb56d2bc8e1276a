"""Parallel executions in one warm replica, and what log capture costs (JSON out).

- Throughput of one low_latency replica with max_parallel_executions_per_pod N = 1, 4, 16, for an
  `async def` function awaiting 50 ms and a `def` function sleeping 50 ms: executions per second
  under wrk with 2N connections (so executions always wait for a slot), against the ideal N / 0.05.
- The cost of log capture on a trivial execution:
  - in-process: the per-execution work of the replica (scope, context copy, a printed line routed
    to the execution and journaled to its writer) against the same function printing to a plain
    stream, p50 over many runs;
  - end to end: a trivial endpoint that prints nothing against one that prints 10 lines, p50 of
    sequential calls (wrk, 1 connection).
- How late a timed-out call is answered: seconds past an `execution_timeout_s` of 1 s until the
  504, for a function that would run 10 s, in a low_latency pod (`def`: its thread runs on;
  `async def`: cancelled) and elastic (its process group stopped). The tests check only that the
  504 comes after the timeout and before the function would have ended.

Needs `wrk` (`make bench` installs it). Usage: python benchmarks/parallel_throughput.py
"""

from __future__ import annotations

import contextvars
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from endpoint_latency import wrk

from rayline.execution_context import ExecutionScope, current_scope
from rayline.local_platform import LocalPlatform
from rayline.runtime.log_capture import RoutingStream
from rayline.store import migrate
from rayline.store.db import Database
from rayline.store.models import utcnow
from rayline.store.record_sql import sql_sink
from rayline.store.record_writer import RecordWriter

MODULE = """
import asyncio
import time

async def wait_50ms():
    await asyncio.sleep(0.05)
    return {}

def sleep_50ms():
    time.sleep(0.05)
    return {}

def quiet():
    return {}

def chatty():
    for i in range(10):
        print(f"line {i} of a trivial execution")
    return {}

def sleep_10s():
    time.sleep(10)
    return {}

async def wait_10s():
    await asyncio.sleep(10)
    return {}
"""


def capture_cost_in_process(folder: Path, runs: int = 20000) -> dict:
    """What the replica does around a trivial execution to keep its logs, in microseconds."""
    db = Database(f"sqlite:///{folder / 'capture.db'}")
    migrate.upgrade(db)
    writer = RecordWriter(sql_sink(db), folder / "journal" / "bench.journal")
    routed = RoutingStream("stdout", io.StringIO(), ExecutionScope(None, lambda stream, line: None))
    plain = io.StringIO()

    def trivial(stream):
        print("one line", file=stream)
        return {}

    def with_capture(i: int) -> None:
        execution_id = f"bench-{i}"
        scope = ExecutionScope(execution_id, lambda stream, line: writer.execution_log(execution_id, stream, line))
        context = contextvars.copy_context()
        context.run(current_scope.set, scope)
        context.run(trivial, routed)
        scope.drain()

    samples: dict[str, list[float]] = {"without_capture_us": [], "with_capture_us": []}
    for i in range(runs):  # the records the logs belong to, as the replica writes them (not timed)
        writer.execution_started(f"bench-{i}", "bench", "bench", [], utcnow())
    for i in range(runs):
        began = time.perf_counter()
        trivial(plain)
        samples["without_capture_us"].append((time.perf_counter() - began) * 1e6)
        began = time.perf_counter()
        with_capture(i)
        samples["with_capture_us"].append((time.perf_counter() - began) * 1e6)
        plain.seek(0)
        plain.truncate()
    writer.close()
    result = {key: round(statistics.median(values), 2) for key, values in samples.items()}
    result["added_p50_us"] = round(result["with_capture_us"] - result["without_capture_us"], 2)
    return result


def timeout_answer(platform: LocalPlatform, sdk, runs: int = 3) -> dict:
    """Seconds past an execution_timeout_s of 1 s until the 504, p50 and max of ``runs`` calls."""
    result = {}
    for label, pipeline, mode in (
        ("low_latency_def", "sleep-10s", "low_latency"),
        ("low_latency_async_def", "wait-10s", "low_latency"),
        ("elastic", "sleep-10s", "elastic"),
    ):
        name = f"timeout-{label.replace('_', '-')}"
        # A slot for each call: a timed-out thread holds its own until its function ends.
        slots = {"enable_parallel_executions": True, "max_parallel_executions_per_pod": runs}
        deployment = sdk.create_deployment(
            pipeline, name, "endpoint", mode=mode, execution_timeout_s=1, **(slots if mode == "low_latency" else {})
        )
        url = f"{platform.url}/endpoints/{deployment['endpoint_url_path']}"
        headers = {"Authorization": f"EndpointToken {deployment['endpoint_token']}"}
        late, statuses = [], set()
        for _ in range(runs):
            began = time.monotonic()
            statuses.add(httpx.post(url, json={}, headers=headers, timeout=60).status_code)
            late.append(time.monotonic() - began - 1)
        result[label] = {
            "past_timeout_p50_s": round(statistics.median(late), 3),
            "past_timeout_max_s": round(max(late), 3),
            "statuses": sorted(statuses),  # 504 only
        }
        sdk.delete_deployment(name)
    return result


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk (or run `make bench`).")
    result: dict = {"benchmark": "parallel_throughput"}
    with tempfile.TemporaryDirectory(prefix="rayline-bench-") as tmp:
        folder = Path(tmp)
        (folder / "pipeline").mkdir()
        (folder / "pipeline" / "main.py").write_text(MODULE)
        result["log_capture_in_process"] = capture_cost_in_process(folder)
        platform = LocalPlatform(folder / "home")
        platform.start()
        try:
            sdk = platform.sdk()
            for function in ("wait_50ms", "sleep_50ms", "quiet", "chatty", "sleep_10s", "wait_10s"):
                sdk.create_pipeline(
                    function.replace("_", "-"),
                    "main.py",
                    function,
                    container_config={"local_folder": str(folder / "pipeline")},
                )
            throughput: dict = {}
            for function in ("wait_50ms", "sleep_50ms"):
                for n in (1, 4, 16):
                    name = f"{function.replace('_', '-')}-n{n}"
                    deployment = sdk.create_deployment(
                        function.replace("_", "-"),
                        name,
                        "endpoint",
                        mode="low_latency",
                        enable_parallel_executions=True,
                        max_parallel_executions_per_pod=n,
                    )
                    url = f"{platform.url}/endpoints/{deployment['endpoint_url_path']}"
                    wrk(url, deployment["endpoint_token"], 2 * n, min(2, 2 * n), 2, folder, body="{}")  # warm-up
                    measured = wrk(url, deployment["endpoint_token"], 2 * n, min(2, 2 * n), 8, folder, body="{}")
                    ideal = n / 0.05
                    throughput[f"{function}_n{n}"] = {
                        "executions_per_s": measured["requests_per_s"],
                        "ideal_per_s": ideal,
                        "ratio_to_ideal": round(measured["requests_per_s"] / ideal, 3),
                        "p50_ms": measured["p50_ms"],
                        "non_2xx": measured["non_2xx"],
                    }
                    sdk.delete_deployment(name)
            result["throughput_one_replica"] = throughput

            end_to_end = {}
            for function in ("quiet", "chatty"):
                deployment = sdk.create_deployment(function, function, "endpoint", mode="low_latency")
                url = f"{platform.url}/endpoints/{deployment['endpoint_url_path']}"
                wrk(url, deployment["endpoint_token"], 1, 1, 2, folder, body="{}")
                end_to_end[function] = wrk(url, deployment["endpoint_token"], 1, 1, 8, folder, body="{}")
            result["log_capture_end_to_end"] = {
                "prints_nothing_p50_ms": end_to_end["quiet"]["p50_ms"],
                "prints_10_lines_p50_ms": end_to_end["chatty"]["p50_ms"],
                "added_by_10_lines_p50_ms": round(end_to_end["chatty"]["p50_ms"] - end_to_end["quiet"]["p50_ms"], 3),
            }
            result["timeout_answer"] = timeout_answer(platform, sdk)
        finally:
            left = platform.stop()
    result["processes_left_after_stop"] = len(left)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
