"""The web console's pages with 10,000 executions in the database (JSON out).

Builds the control plane in this process over a throwaway home (SQLite in a temporary
RAYLINE_HOME, `rayline up`'s preparation of it) with the fakes of its two runtime seams
(tests/fakes.py: no Ray, no Serve), so that what is measured is the page itself: the services'
queries, the templates, the session check. One pipeline, an elastic and a low-latency endpoint
deployment, and ``--executions`` (10,000) executions, written straight into SQL, spread over
both deployments and plain runs, with every status, a few log lines each. Then each main page
is fetched ``--repeat`` times through a TestClient with a signed-in session, and its render time
reported (p50/p95 ms; ``baseline_health`` is the API's health route, the floor of a request here).

Then ``--deployments`` (100) more deployments of the pipeline (every other one low-latency, with
one pod row), ``--executions-each`` (40) executions each, and the overview again
(``overview_<n>_deployments``): its queries must not grow with the number of deployments.

Usage: python benchmarks/console_pages.py [--executions 10000] [--repeat 50] [--deployments 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fakes

from sqlalchemy import insert  # noqa: E402

from rayline.store.models import Execution, ExecutionLog, Pod, utcnow  # noqa: E402
from tests.fakes import build_platform  # noqa: E402

STATUSES = ("Succeeded", "Succeeded", "Succeeded", "Failed", "Error", "Running")
SOURCE = {"main.py": "def handler(x):\n    return {'y': x * 2}\n"}
X_TO_Y = {"inputs": [{"name": "x", "data_type": "number"}], "outputs": [{"name": "y", "data_type": "number"}]}


def summary(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
        "requests": len(ordered),
    }


def fill(platform, count: int) -> list[str]:
    """``count`` executions of pipeline ``bench`` (a third for each deployment, a third plain
    runs), newest last, 3 log lines each; returns a few ids to open."""
    began = utcnow() - timedelta(seconds=count)
    executions, logs = [], []
    owners = ("bench-elastic", "bench-warm", None)
    for number in range(1, count + 1):
        deployment = owners[number % 3]
        execution_id = f"{deployment or 'bench'}-{number}"
        created = began + timedelta(seconds=number)
        status = STATUSES[number % len(STATUSES)]
        executions.append(
            {
                "execution_id": execution_id,
                "pipeline_name": "bench",
                "deployment_name": deployment,
                "status": status,
                "inputs": [{"pipeline_input_name": "x", "data_type": "number", "value": number}],
                "outputs": [] if status != "Succeeded" else [{"pipeline_output_name": "y", "value": number * 2}],
                "error": "ValueError: no" if status == "Failed" else None,
                "created_at": created,
                "start_date": created,
                "end_date": None if status == "Running" else created + timedelta(milliseconds=5 + number % 200),
            }
        )
        logs += [
            {"execution_id": execution_id, "timestamp": created, "stream": "stdout", "message": f"line {line}"}
            for line in range(3)
        ]
    with platform.context.db.session() as session:
        session.execute(insert(Execution), executions)
        session.execute(insert(ExecutionLog), logs)
    return [executions[-1]["execution_id"], executions[count // 2]["execution_id"]]


def many_deployments(platform, count: int, each: int) -> None:
    """``count`` more endpoint deployments of ``bench`` (every other one low-latency, with one
    running pod), ``each`` executions apiece, written straight into SQL."""
    began, executions, pods = utcnow() - timedelta(hours=1), [], []
    for index in range(count):
        name, mode = f"bench-many-{index}", ("low_latency" if index % 2 else "elastic")
        created = platform.client.post("/api/v1/endpoints", json={"pipeline_name": "bench", "name": name, "mode": mode})
        assert created.status_code == 201, created.text
        if mode == "low_latency":
            pods.append({"pod_id": f"{name}-pod", "deployment_name": name, "version": 1, "status": "running"})
        for number in range(each):
            at = began + timedelta(seconds=number)
            executions.append(
                {
                    "execution_id": f"{name}-{number + 1}",
                    "pipeline_name": "bench",
                    "deployment_name": name,
                    "status": STATUSES[number % len(STATUSES)],
                    "inputs": [],
                    "outputs": [],
                    "created_at": at,
                    "start_date": at,
                    "end_date": at + timedelta(milliseconds=20),
                }
            )
    with platform.context.db.session() as session:
        session.execute(insert(Execution), executions)
        if pods:
            session.execute(insert(Pod), pods)


def measure(client, path: str, repeat: int) -> dict:
    samples = []
    for _ in range(repeat + 3):
        began = time.perf_counter()
        answer = client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return summary(samples[3:])  # the first three warm the caches


def count_queries(platform, client, path: str) -> int:
    from sqlalchemy import event

    seen = []

    def counted(*args) -> None:
        seen.append(1)

    event.listen(platform.context.db.engine, "before_cursor_execute", counted)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(platform.context.db.engine, "before_cursor_execute", counted)
    return len(seen)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--executions-each", type=int, default=40)
    args = parser.parse_args()
    for name in [name for name in os.environ if name.startswith("RAYLINE_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="rayline-console-bench-") as tmp:
        platform = build_platform(Path(tmp) / "home", functions={"handler": lambda x: {"y": x * 2}})
        try:
            client = platform.client
            assert platform.create_pipeline("bench", SOURCE, **X_TO_Y).status_code == 201
            for name, mode in (("bench-elastic", "elastic"), ("bench-warm", "low_latency")):
                created = client.post("/api/v1/endpoints", json={"pipeline_name": "bench", "name": name, "mode": mode})
                assert created.status_code == 201, created.text
            opened = fill(platform, args.executions)
            signed_in = client.post("/login", data={"token": platform.token}, follow_redirects=False)
            assert signed_in.status_code == 303, signed_in.text
            pages = {
                "overview": "/",
                "deployment_elastic": "/deployments/bench-elastic",
                "deployment_low_latency": "/deployments/bench-warm",
                "execution": f"/executions/{opened[0]}",
                "pipeline_first_page": "/pipelines/bench",
                "pipeline_page_100": "/pipelines/bench?page=100",
                "pipeline_filtered_failed": "/pipelines/bench?status=Failed",
                "baseline_health": "/api/v1/health",
            }
            results: dict = {"executions": args.executions}
            for label, path in pages.items():
                results[label] = measure(client, path, args.repeat)
            results["overview_queries"] = count_queries(platform, client, "/")
            if args.deployments:
                many_deployments(platform, args.deployments, args.executions_each)
                label = f"overview_{args.deployments + 2}_deployments"
                results[label] = measure(client, "/", max(5, args.repeat // 5))
                results[f"{label}_queries"] = count_queries(platform, client, "/")
            results["slowest_p95_ms"] = max(
                value["p95_ms"] for key, value in results.items() if isinstance(value, dict)
            )
            print(json.dumps(results, indent=2))
        finally:
            platform.close()


if __name__ == "__main__":
    main()
