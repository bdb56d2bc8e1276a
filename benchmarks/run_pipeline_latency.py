"""run_pipeline wall time for a trivial function, next to bare Ray tasks in fresh workers.

Starts its own platform (`rayline up` on free ports, a temporary RAYLINE_HOME), then measures, in
the same run and on the same Ray cluster:
- ``run_pipeline``: SDK call to outputs, over HTTP (fresh worker, package as working_dir, record,
  logs);
- ``bare_task``: ``ray.get(f.remote())`` with ``@ray.remote(max_calls=1)``, from a driver on that
  cluster (Ray 2.60 refuses ``max_calls`` in ``.options()``);
- ``bare_task_working_dir``: the same with the pipeline's package as ``working_dir``, which is
  what an execution needs at the least.
Prints one JSON object. Usage: python benchmarks/run_pipeline_latency.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rayline import Output
from rayline.local_platform import LocalPlatform


def summary(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    return {
        "p50_ms": round(pct(50), 1),
        "p99_ms": round(pct(99), 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
        "runs": len(ordered),
    }


def timed(call, runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rayline-bench-") as tmp:
        folder = Path(tmp) / "pipeline"
        folder.mkdir()
        (folder / "main.py").write_text("def noop():\n    return {'ok': True}\n")
        platform = LocalPlatform(Path(tmp) / "home")
        up_s = platform.start()
        try:
            sdk = platform.sdk()
            pipeline = sdk.create_pipeline(
                "bench-noop",
                "main.py",
                "noop",
                container_config={"local_folder": str(folder)},
                outputs=[Output("ok", "boolean")],
            )
            assert pipeline["creation_info"]["status"] == "ready"
            run_samples = timed(lambda: sdk.run_pipeline("bench-noop"), args.runs)

            os.environ["RAY_AUTH_MODE"] = "token"  # read at import: the platform's cluster uses Ray's token auth
            import ray

            ray.init(address=platform.ray_address, log_to_driver=False, logging_level="ERROR")
            try:
                # Ray 2.60 takes max_calls only in the decorator, not in .options().
                @ray.remote(max_calls=1)
                def noop():
                    return True

                package_uri = next((platform.home / "packages" / "bench-noop").glob("*.zip")).as_uri()
                bare_samples = timed(lambda: ray.get(noop.remote()), args.runs)
                bare_wd_samples = timed(
                    lambda: ray.get(noop.options(runtime_env={"working_dir": package_uri}).remote()), args.runs
                )
            finally:
                ray.shutdown()
        finally:
            left = platform.stop()

    result = {
        "benchmark": "run_pipeline_latency",
        "rayline_up_s": round(up_s, 1),
        "run_pipeline": summary(run_samples),
        "bare_task": summary(bare_samples),
        "bare_task_working_dir": summary(bare_wd_samples),
    }
    result["ratio_p50_vs_bare_task"] = round(result["run_pipeline"]["p50_ms"] / result["bare_task"]["p50_ms"], 2)
    result["ratio_p50_vs_bare_task_working_dir"] = round(
        result["run_pipeline"]["p50_ms"] / result["bare_task_working_dir"]["p50_ms"], 2
    )
    result["processes_left_after_stop"] = len(left)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
