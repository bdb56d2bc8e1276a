"""The whole benchmark suite, side by side in one run on this machine (JSON out).

Runs each script of this folder in turn (each starts its own platform and measures its
baselines in the same run), gathers their JSON with the date and the machine, prints it and
writes it to benchmarks/results/<date>.json. benchmarks/README.md summarizes a run.

Usage: python benchmarks/suite.py   (or `make bench`, which also installs wrk)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {
    "run_pipeline": ["run_pipeline_latency.py"],
    "endpoints_haproxy": ["endpoint_latency.py"],
    "endpoints_default_proxy": ["endpoint_latency.py", "--no-ha-proxy"],
    "elastic": ["elastic_latency.py"],
    "parallel": ["parallel_throughput.py"],
    "autoscaling": ["autoscaling.py"],
    "model_and_capacity": ["model_and_capacity.py"],
    "data_store": ["data_store_throughput.py"],
    "console": ["console_pages.py"],
}


def machine() -> dict:
    from importlib.metadata import version

    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(total_kib / 1024**2, 1),
        "python": platform.python_version(),
        "ray": version("ray"),
        "system": platform.platform(),
    }


def main() -> None:
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), "runs": {}}
    for name, command in RUNS.items():
        began = time.monotonic()
        done = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], capture_output=True, text=True)
        try:
            if done.returncode != 0:
                raise ValueError(f"exit status {done.returncode}")
            result["runs"][name] = json.loads(done.stdout[done.stdout.index("{") :])
        except ValueError as error:  # one script failing must not lose the others' results
            result["runs"][name] = {"failed": str(error), "stderr_tail": done.stderr[-2000:]}
        result["runs"][name]["wall_s"] = round(time.monotonic() - began)
        print(f"{name}: done in {result['runs'][name]['wall_s']} s", file=sys.stderr)
    out = HERE / "results" / f"{result['date'][:10]}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
