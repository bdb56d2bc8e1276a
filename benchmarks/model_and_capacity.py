"""What preloading buys, and what a warm pod costs (JSON out).

- The MiniLM pipeline of notebooks/02 (all-MiniLM-L6-v2 loaded at import): p50 of calls to an
  elastic endpoint (the model loaded at every execution) against a low_latency one (loaded once),
  over HTTP with the endpoint token, in the same run.
- Resident memory (RSS, and PSS: shared pages divided among the processes that share them) of
  one idle low_latency pod of a trivial pipeline, read from /proc.
- How many idle low_latency deployments fit: ``--bound`` of them are created one after another,
  and MemAvailable is read after each; its slope over the second half of them is the cost of one
  more pod, which extrapolates how many the machine's available memory would hold.
- ``rayline up`` time to ready.

Usage: python benchmarks/model_and_capacity.py [--bound 8] [--elastic-calls 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from rayline import Input, Output
from rayline.local_platform import LocalPlatform

ROOT = Path(__file__).resolve().parents[1]
PID_PIPELINE = "import os\n\ndef pid():\n    return {'pid': os.getpid()}\n"


def meminfo_kib(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def process_kib(pid: int) -> dict[str, int]:
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    values = {line.split(":")[0]: int(line.split()[1]) for line in rollup[1:]}
    return {"rss_mib": round(values["Rss"] / 1024, 1), "pss_mib": round(values["Pss"] / 1024, 1)}


def p50_ms(call, runs: int) -> float:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return round(statistics.median(samples) * 1000, 1)


def endpoint_caller(platform: LocalPlatform, deployment: dict, body: dict):
    url = f"{platform.url}/endpoints/{deployment['endpoint_url_path']}"
    headers = {"Authorization": f"EndpointToken {deployment['endpoint_token']}"}

    def call() -> dict:
        response = httpx.post(url, json=body, headers=headers, timeout=300, follow_redirects=True)
        response.raise_for_status()
        return response.json()

    return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bound", type=int, default=8, help="idle low_latency deployments to create")
    parser.add_argument("--elastic-calls", type=int, default=4)
    args = parser.parse_args()
    result: dict = {"benchmark": "model_and_capacity"}
    with tempfile.TemporaryDirectory(prefix="rayline-bench-") as tmp:
        folder = Path(tmp)
        (folder / "pid").mkdir()
        (folder / "pid" / "main.py").write_text(PID_PIPELINE)
        platform = LocalPlatform(folder / "home")
        began = time.perf_counter()
        platform.start()
        result["rayline_up_ready_s"] = round(time.perf_counter() - began, 1)
        try:
            sdk = platform.sdk()
            sdk.create_pipeline(
                "minilm",
                "main.py",
                "similarity",
                container_config={"local_folder": str(ROOT / "notebooks" / "pipelines" / "minilm")},
                inputs=[Input("a", "string"), Input("b", "string")],
                outputs=[Output("similarity", "number")],
            )
            pair = {"a": "A cat sits on the mat.", "b": "A kitten is resting on a rug."}
            warm = endpoint_caller(
                platform, sdk.create_deployment("minilm", "minilm-warm", "endpoint", mode="low_latency"), pair
            )
            elastic = endpoint_caller(
                platform, sdk.create_deployment("minilm", "minilm-elastic", "endpoint", mode="elastic"), pair
            )
            warm()
            elastic()
            p50_warm, p50_elastic = p50_ms(warm, 30), p50_ms(elastic, args.elastic_calls)
            result["minilm_similarity"] = {
                "elastic_p50_ms": p50_elastic,
                "low_latency_p50_ms": p50_warm,
                "speedup": round(p50_elastic / p50_warm, 1),
            }
            for name in ("minilm-warm", "minilm-elastic"):
                sdk.delete_deployment(name)
            time.sleep(3)  # the MiniLM pod's memory given back before the next measures

            sdk.create_pipeline(
                "pid",
                "main.py",
                "pid",
                container_config={"local_folder": str(folder / "pid")},
                outputs=[Output("pid", "number")],
            )
            pods, callers = [], []
            for i in range(args.bound):
                callers.append(
                    endpoint_caller(
                        platform, sdk.create_deployment("pid", f"idle-{i}", "endpoint", mode="low_latency"), {}
                    )
                )
                pid = int(callers[-1]()["output"]["pid"])
                time.sleep(1)
                pods.append({**process_kib(pid), "available_mib": round(meminfo_kib("MemAvailable") / 1024)})
            # The slope over the later pods: while the first ones start, memory that earlier
            # measures (the MiniLM pod) give back still blurs MemAvailable.
            later = pods[len(pods) // 2 - 1 :]
            cost_mib = (later[0]["available_mib"] - later[-1]["available_mib"]) / max(1, len(later) - 1)
            answering = len({int(call()["output"]["pid"]) for call in callers})  # each its own pod, still up
            result["idle_low_latency_pod"] = {
                "first": pods[0],
                "mean_rss_mib": round(statistics.fmean(p["rss_mib"] for p in pods), 1),
                "mean_pss_mib": round(statistics.fmean(p["pss_mib"] for p in pods), 1),
            }
            total_mib = meminfo_kib("MemTotal") / 1024
            result["capacity"] = {
                "created": args.bound,
                "answering_from_distinct_pods": answering,
                "mem_available_drop_per_pod_mib": round(cost_mib, 1),
                "machine_mem_total_mib": round(total_mib),
                "extrapolated_pods_in_available_memory": (
                    len(pods) + int(pods[-1]["available_mib"] / cost_mib) if cost_mib > 0 else None
                ),
                "per_pod": pods,
            }
        finally:
            left = platform.stop()
    result["processes_left_after_stop"] = len(left)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
