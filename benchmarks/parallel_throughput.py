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

from endpoint_latency import wrk

from rayline.execution_context import ExecutionScope, current_scope
from rayline.local_platform import LocalPlatform
from rayline.runtime.log_capture import RoutingStream
from rayline.store import migrate
from rayline.store.db import Database
from rayline.store.models import utcnow
from rayline.store.record_writer import RecordWriter, sql_sink

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
            for function in ("wait_50ms", "sleep_50ms", "quiet", "chatty"):
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
        finally:
            left = platform.stop()
    result["processes_left_after_stop"] = len(left)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
