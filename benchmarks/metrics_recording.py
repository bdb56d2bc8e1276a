"""Pipeline metrics recorded from inside an execution: 10,000 list-metric values in one call, with
RaylineSdk and with craft-ai-sdk 0.74.7 (each created with no arguments, from the execution's
environment), against one single-value metric recorded by the same execution (the round trip
alone), in the same run (JSON out). Each figure is the median of the executions' own timings.

Usage: python benchmarks/metrics_recording.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

from rayline import Input, Output
from rayline.local_platform import LocalPlatform

PIPELINE = """
import time


def run(kind="rayline"):
    if kind == "craft":
        from craft_ai_sdk import CraftAiSdk

        sdk = CraftAiSdk()
    else:
        from rayline import RaylineSdk

        sdk = RaylineSdk()
    sdk.record_metric_value("warm-up", 1.0)  # the client's connection (and craft's access token)
    began = time.perf_counter()
    sdk.record_metric_value("accuracy", 0.93)
    one = time.perf_counter() - began
    values = [i / 10_000 for i in range(10_000)]
    began = time.perf_counter()
    sdk.record_list_metric_values("series", values)
    many = time.perf_counter() - began
    return {"timings": {"single_value_s": one, "list_10000_s": many}}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    result: dict = {"benchmark": "metrics_recording", "list_values": 10_000, "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="rayline-bench-") as tmp:
        folder = Path(tmp)
        (folder / "src").mkdir()
        (folder / "src" / "main.py").write_text(textwrap.dedent(PIPELINE).lstrip())
        platform = LocalPlatform(folder / "home")
        platform.start()
        try:
            with platform.sdk() as sdk:
                sdk.create_pipeline(
                    "metrics-bench",
                    "main.py",
                    "run",
                    container_config={"local_folder": str(folder / "src")},
                    inputs=[Input("kind", "string", is_required=False)],
                    outputs=[Output("timings", "json")],
                )
                for kind in ("rayline", "craft"):
                    timings = [
                        sdk.run_pipeline("metrics-bench", {"kind": kind})["outputs"]["timings"]
                        for _ in range(args.runs)
                    ]
                    one = statistics.median(t["single_value_s"] for t in timings)
                    many = statistics.median(t["list_10000_s"] for t in timings)
                    result[kind] = {
                        "single_value_ms": round(one * 1000, 2),
                        "list_10000_values_ms": round(many * 1000, 1),
                        "ratio_to_single_value": round(many / one, 1),
                    }
                [series] = sdk.get_list_metrics(
                    name="series", execution_id=sdk.list_pipeline_executions("metrics-bench")[0]["execution_id"]
                )
                assert len(series["values"]) == 10_000
        finally:
            platform.stop()
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
