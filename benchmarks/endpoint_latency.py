"""Endpoint deployments against their baselines, measured side by side in one run (JSON out).

- low_latency: a trivial pipeline behind `POST /endpoints/<path>` (endpoint token checked,
  execution recorded with its logs), as `def double(x)` and as `async def double(x)`, against a
  bare uvicorn + FastAPI JSON endpoint on the same machine, and against raw Ray Serve deployments
  behind the same Serve HTTP entry (HAProxy, or Serve's default proxy): one that answers on its
  event loop (`async def __call__`), and one that runs a `def double(x)` in a thread, as a warm
  pod runs a `def` function (like for like). p50/p99 of sequential calls (wrk, 1 connection)
  and requests/s with 16 connections (wrk, 2 threads), from a separate process, each the median
  of --rounds rounds taken in turn (this VM's speed drifts). After the load,
  every request must have its execution record.
- (elastic endpoints: benchmarks/elastic_latency.py.)
- time from create_deployment to `up` for a low_latency deployment.

With ``--no-ha-proxy`` the platform runs Serve's default proxy (``RAYLINE_HA_PROXY=false``), so
the raw Serve baseline and the low_latency endpoint are measured behind it instead.

Needs `wrk` (Debian package; `make bench` installs it).
With ``--reply-after-commit`` pods answer once each call's records are committed, as pods off
the control plane's node always do (what the durability of their answers costs).

Usage: python benchmarks/endpoint_latency.py [--no-ha-proxy] [--reply-after-commit] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from rayline import Input, Output
from rayline.local_platform import LocalPlatform
from rayline.ports import free_port

BARE_APP = """
from fastapi import FastAPI, Request

app = FastAPI()

@app.post("/e")
async def endpoint(request: Request):
    body = await request.json()
    return {"execution_id": "bare", "output": {"y": body["x"]}}
"""


def wrk(
    url: str, token: str | None, connections: int, threads: int, duration_s: int, folder: Path, body: str = '{"x": 1}'
) -> dict:
    script = folder / "post.lua"
    headers = f'wrk.headers["Authorization"] = "EndpointToken {token}"\n' if token else ""
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = \'{body}\'\nwrk.headers["Content-Type"] = "application/json"\n' + headers
    )
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return round(float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit], 3)

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": requests,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else None,
    }


def median_run(runs: list[dict]) -> dict:
    """The medians of several wrk runs of one target (requests: their sum), with every run's req/s."""
    return {
        "p50_ms": round(statistics.median(run["p50_ms"] for run in runs), 3),
        "p99_ms": round(statistics.median(run["p99_ms"] for run in runs), 3),
        "requests_per_s": round(statistics.median(run["requests_per_s"] for run in runs), 1),
        "requests_per_s_of_each_round": [run["requests_per_s"] for run in runs],
        "requests": sum(run["requests"] for run in runs),
        "non_2xx": sum(run["non_2xx"] for run in runs),
        "socket_errors": [run["socket_errors"] for run in runs if run["socket_errors"]] or None,
    }


def deploy_raw_serve(platform: LocalPlatform) -> tuple[str, str]:
    """Trivial Serve deployments on the platform's cluster, behind the same HTTP entry: one that
    answers on its event loop, one that runs a ``def`` function in a thread (URLs, in that order)."""
    import os

    os.environ["RAY_AUTH_MODE"] = "token"  # read at import: the cluster uses Ray's token auth
    import ray
    from ray import serve

    ray.init(address=platform.ray_address, log_to_driver=False, logging_level="ERROR")

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Raw:
        async def __call__(self, request):
            body = await request.json()
            return {"execution_id": "raw", "output": {"y": body["x"]}}

    def double(x):
        return {"y": x * 2}

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class RawDef:
        def __init__(self):
            from concurrent.futures import ThreadPoolExecutor

            self._thread = ThreadPoolExecutor(1)

        async def __call__(self, request):
            import asyncio

            body = await request.json()
            output = await asyncio.get_running_loop().run_in_executor(self._thread, double, body["x"])
            return {"execution_id": "raw", "output": output}

    serve.run(Raw.bind(), name="bench-raw-serve", route_prefix="/raw")
    serve.run(RawDef.bind(), name="bench-raw-serve-def", route_prefix="/raw-def")
    ray.shutdown()
    return f"{platform.url}/raw", f"{platform.url}/raw-def"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-ha-proxy", action="store_true", help="Serve's default proxy instead of HAProxy")
    parser.add_argument(
        "--reply-after-commit",
        action="store_true",
        help="pods answer once each call's records are committed (RAYLINE_REPLY_AFTER_COMMIT=always), as pods "
        "off the control plane's node always do",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measurement (medians are kept)")
    args = parser.parse_args()
    if args.rounds < 1:
        sys.exit("--rounds must be 1 or more.")
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk (or run `make bench`).")
    result: dict = {
        "benchmark": "endpoint_latency",
        "serve_ingress": "default proxy" if args.no_ha_proxy else "HAProxy",
        "low_latency_replies": "after commit" if args.reply_after_commit else "once journaled",
    }
    env = {"RAYLINE_HA_PROXY": "false"} if args.no_ha_proxy else {}
    if args.reply_after_commit:
        env["RAYLINE_REPLY_AFTER_COMMIT"] = "always"
    with tempfile.TemporaryDirectory(prefix="rayline-bench-") as tmp:
        folder = Path(tmp)
        (folder / "pipeline").mkdir()
        (folder / "pipeline" / "main.py").write_text(
            "def double(x):\n    return {'y': x * 2}\n\n\nasync def double_async(x):\n    return {'y': x * 2}\n"
        )
        (folder / "bare.py").write_text(textwrap.dedent(BARE_APP))
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bare:app", "--port", str(bare_port), "--log-level", "warning"],
            cwd=folder,
        )
        platform = LocalPlatform(folder / "home", extra_env=env)
        platform.start()
        try:
            sdk = platform.sdk()
            for pipeline, function in (("double", "double"), ("double-async", "double_async")):
                sdk.create_pipeline(
                    pipeline,
                    "main.py",
                    function,
                    container_config={"local_folder": str(folder / "pipeline")},
                    inputs=[Input("x", "number")],
                    outputs=[Output("y", "number")],
                )
            create_s = []
            for i in range(3):
                began = time.perf_counter()
                sdk.create_deployment("double", f"warm-{i}", "endpoint", mode="low_latency")
                create_s.append(time.perf_counter() - began)
            for i in (1, 2):
                sdk.delete_deployment(f"warm-{i}")
            sdk.create_deployment("double-async", "warm-async", "endpoint", mode="low_latency")
            raw_url, raw_def_url = deploy_raw_serve(platform)
            targets: dict[str, tuple[str, str | None]] = {
                "bare_uvicorn": (f"http://127.0.0.1:{bare_port}/e", None),
                "raw_serve": (raw_url, None),
                "raw_serve_def_in_thread": (raw_def_url, None),
            }
            for name in ("warm-0", "warm-async"):
                warm = sdk.get_deployment(name)
                label = "low_latency" if name == "warm-0" else "low_latency_async"
                targets[label] = (f"{platform.url}/endpoints/{warm['endpoint_url_path']}", warm["endpoint_token"])
            for _ in range(50):  # all warmed up
                for url, token in targets.values():
                    httpx.post(url, json={"x": 1}, headers={"Authorization": f"EndpointToken {token}"} if token else {})

            # Rounds of every target in turn, each from a quiet start (what the run before left to do,
            # a pod's records say, is done): this VM's speed drifts by a fifth from minute to
            # minute, so one run of each would compare moments, not endpoints. Medians of rounds.
            runs: dict[str, dict[str, list[dict]]] = {"sequential": {}, "concurrent_16": {}}
            for _ in range(args.rounds):
                for label, (url, token) in targets.items():
                    for kind, connections, threads in (("sequential", 1, 1), ("concurrent_16", 16, 2)):
                        time.sleep(2)
                        runs[kind].setdefault(label, []).append(wrk(url, token, connections, threads, 8, folder))
            sequential, concurrent = (
                {label: median_run(measured) for label, measured in runs[kind].items()}
                for kind in ("sequential", "concurrent_16")
            )
            time.sleep(1.5)
            records = {}
            with sqlite3.connect(platform.home / "rayline.db") as db:
                for name, label in (("warm-0", "low_latency"), ("warm-async", "low_latency_async")):
                    recorded = db.execute("SELECT COUNT(*) FROM executions WHERE deployment_name = ?", (name,))
                    sent = 50 + sum(run["requests"] for kind in runs.values() for run in kind[label])
                    records[name] = {"requests_answered": sent, "executions_recorded": recorded.fetchone()[0]}

            def ratios(ours: str, base: str) -> dict:
                return {
                    "p50": round(sequential[ours]["p50_ms"] / sequential[base]["p50_ms"], 2),
                    "requests_per_s_16": round(
                        concurrent[ours]["requests_per_s"] / concurrent[base]["requests_per_s"], 2
                    ),
                }

            result["low_latency"] = {
                "sequential": sequential,
                "concurrent_16": concurrent,
                "def_vs_raw_serve": ratios("low_latency", "raw_serve"),
                "def_vs_raw_serve_def_in_thread": ratios("low_latency", "raw_serve_def_in_thread"),
                "async_vs_raw_serve": ratios("low_latency_async", "raw_serve"),
                "p50_ratio_vs_bare_uvicorn": round(
                    sequential["low_latency"]["p50_ms"] / sequential["bare_uvicorn"]["p50_ms"], 2
                ),
                "records": records,
                "create_to_up_s": [round(s, 2) for s in create_s],
            }

        finally:
            left = platform.stop()
            bare.terminate()
            bare.wait(10)
    result["processes_left_after_stop"] = len(left)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
