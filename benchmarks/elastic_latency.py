"""Elastic executions against their baselines, measured side by side in one run (JSON out).

Starts its own platform (`rayline up` on free ports, a temporary RAYLINE_HOME) with a trivial
pipeline (`def double(x)`) behind an elastic endpoint deployment, and measures:
- the endpoint: p50/p99 of calls one every 0.5 s (sporadic), of 10 calls back to back, and the
  executions/s sustained by 8 concurrent callers (each execution checked `Succeeded` after);
- ``run_pipeline`` from the SDK (call to outputs), once warm;
- the RSS of the warm elastic pool at rest: the Ray workers of elastic runtime environments,
  their templates and their ready children (``rayline.runtime.forks``).

Baselines, from a driver on the platform's Ray cluster, in the same run:
- ``bare_task_working_dir``: a ``max_calls=1`` task with the pipeline's package as working_dir
  (a fresh Ray worker per call: what an execution cost before fork servers without spares);
- ``spare_actor``: the former spare path, an actor started ahead with that runtime_env that
  serves one call and is killed, its replacement started after the call (sporadic calls only:
  back to back, replacements could not keep up and calls fell back to the bare task).

Usage: python benchmarks/elastic_latency.py [--calls 30] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from rayline import Input, Output
from rayline.local_platform import LocalPlatform


def summary(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        "calls": len(ordered),
    }


def timed(call: Callable[[], object], count: int, pause_s: float) -> list[float]:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
        time.sleep(pause_s)
    return samples


def sustained(call: Callable[[], str], callers: int, duration_s: float) -> dict:
    """Executions/s with ``callers`` threads calling back to back for ``duration_s``."""
    ids: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + duration_s

    def loop() -> None:
        while time.monotonic() < stop:
            execution_id = call()
            with lock:
                ids.append(execution_id)

    threads = [threading.Thread(target=loop) for _ in range(callers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {"callers": callers, "executions": len(ids), "executions_per_s": round(len(ids) / elapsed, 1), "ids": ids}


def pool_memory() -> dict:
    """RSS (and PSS, which counts shared pages once) of the elastic fork servers at rest."""
    forked = {}  # a template, and the ready child forked from it, have its command line
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"rayline.runtime.forks" in (entry / "cmdline").read_bytes():
                    status = (entry / "status").read_text()
                    forked[int(entry.name)] = int(status.split("PPid:")[1].split()[0])
            except OSError:
                continue
    templates = [pid for pid, parent in forked.items() if parent not in forked]
    pids = set(forked) | {forked[pid] for pid in templates}  # with the templates' Ray workers

    def field_kib(pid: int, path: str, name: str) -> int:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        return 0

    rss = sum(field_kib(pid, "status", "VmRSS") for pid in pids)
    pss = sum(field_kib(pid, "smaps_rollup", "Pss") for pid in pids)
    return {
        "templates": len(templates),
        "processes": len(pids),
        "rss_mib": round(rss / 1024, 1),
        "pss_mib": round(pss / 1024, 1),
    }


def baselines(platform: LocalPlatform, package_uri: str, calls: int) -> dict:
    os.environ["RAY_AUTH_MODE"] = "token"  # read at import: the platform's cluster uses Ray's token auth
    import ray

    ray.init(address=platform.ray_address, log_to_driver=False, logging_level="ERROR")
    try:
        env = {"working_dir": package_uri}

        @ray.remote(max_calls=1)  # Ray 2.60 takes max_calls only in the decorator
        def bare(x):
            from main import double

            return double(x)

        @ray.remote(num_cpus=0, max_restarts=0)
        class Spare:
            def run(self, x):
                from main import double

                return double(x)

        bare_task = bare.options(runtime_env=env)
        timed(lambda: ray.get(bare_task.remote(1)), 2, 0)
        result = {
            "bare_task_working_dir": {
                "one_call_every_0_5_s": summary(timed(lambda: ray.get(bare_task.remote(1)), calls, 0.5)),
                "back_to_back_10": summary(timed(lambda: ray.get(bare_task.remote(1)), 10, 0)),
            }
        }
        # Two spares, as RAYLINE_ELASTIC_SPARE_WORKERS was by default.
        spares = [Spare.options(runtime_env=env).remote() for _ in range(2)]
        ray.get([spare.run.remote(1) for spare in spares])
        spares = [Spare.options(runtime_env=env).remote() for _ in range(2)]
        time.sleep(3)

        def spare_call() -> None:
            actor = spares.pop(0)
            ray.get(actor.run.remote(1))
            ray.kill(actor)
            spares.append(Spare.options(runtime_env=env).remote())

        result["spare_actor"] = {"one_call_every_0_5_s": summary(timed(spare_call, calls, 0.5))}
        return result
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    result: dict = {"benchmark": "elastic_latency"}
    with tempfile.TemporaryDirectory(prefix="rayline-bench-") as tmp:
        folder = Path(tmp) / "pipeline"
        folder.mkdir()
        (folder / "main.py").write_text("def double(x):\n    return {'y': x * 2}\n")
        platform = LocalPlatform(Path(tmp) / "home")
        platform.start()
        try:
            sdk = platform.sdk()
            sdk.create_pipeline(
                "double",
                "main.py",
                "double",
                container_config={"local_folder": str(folder)},
                inputs=[Input("x", "number")],
                outputs=[Output("y", "number")],
            )
            deployment = sdk.create_deployment("double", "elastic", "endpoint", mode="elastic")
            headers = {"Authorization": f"EndpointToken {deployment['endpoint_token']}"}
            url = f"{platform.url}/endpoints/elastic"
            with httpx.Client(headers=headers, timeout=120) as client:

                def call() -> str:
                    response = client.post(url, json={"x": 2})
                    response.raise_for_status()
                    assert response.json()["output"] == {"y": 4}, response.text
                    return response.json()["execution_id"]

                timed(call, 5, 0.2)  # the environment's worker, its template
                time.sleep(2)
                result["pool_at_rest"] = pool_memory()
                sporadic = timed(call, args.calls, 0.5)
                back_to_back = []
                for _ in range(3):
                    back_to_back += timed(call, 10, 0)
                    time.sleep(1)
            clients = [httpx.Client(headers=headers, timeout=120) for _ in range(8)]
            local = threading.local()

            def concurrent_call() -> str:
                if not hasattr(local, "client"):
                    local.client = clients.pop()
                response = local.client.post(url, json={"x": 2})
                response.raise_for_status()
                return response.json()["execution_id"]

            load = sustained(concurrent_call, 8, args.duration)
            statuses = {}
            for execution_id in load.pop("ids"):
                status = sdk.get_pipeline_execution(execution_id)["status"]
                statuses[status] = statuses.get(status, 0) + 1
            load["statuses"] = statuses
            run_pipeline = timed(lambda: sdk.run_pipeline("double", inputs={"x": 2}), 3, 0.2)
            run_pipeline = timed(lambda: sdk.run_pipeline("double", inputs={"x": 2}), args.calls, 0.2)
            result["elastic_endpoint"] = {
                "one_call_every_0_5_s": summary(sporadic),
                "back_to_back_10": summary(back_to_back),
                "concurrent_8": load,
            }
            result["run_pipeline"] = summary(run_pipeline)
            package_uri = next((platform.home / "packages" / "double").glob("*.zip")).as_uri()
            result["baselines"] = baselines(platform, package_uri, args.calls)
        finally:
            left = platform.stop()
    base = result["baselines"]
    result["ratio_sporadic_p50_vs_spare_actor"] = round(
        result["elastic_endpoint"]["one_call_every_0_5_s"]["p50_ms"]
        / base["spare_actor"]["one_call_every_0_5_s"]["p50_ms"],
        2,
    )
    result["ratio_back_to_back_p50_vs_bare_task"] = round(
        result["elastic_endpoint"]["back_to_back_10"]["p50_ms"]
        / base["bare_task_working_dir"]["back_to_back_10"]["p50_ms"],
        2,
    )
    result["processes_left_after_stop"] = len(left)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
