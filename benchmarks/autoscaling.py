"""Serverless low-latency deployments: several pods, standby and wake, idle pods' database cost
(JSON out).

- Throughput: a `def` function sleeping 100 ms, parallel off, 12 concurrent callers (wrk), with
  max_pods=3 against the same deployment with max_pods=1, in the same run; and the time from
  the start of the load to the second pod serving (its first answer).
- Wake from standby: a trivial module with min_pods=0 and standby_after_s=2; the seconds from a
  call to its 200 answer, p50 of 5 wakes; the resident memory of the deployment's processes
  while in standby (0: no pod process left).
- Idle pods: database statements per idle pod per minute (the control plane's own statements,
  with no pod, subtracted), on PostgreSQL with every statement logged, for this tree and, with
  ``--before <commit>``, for an earlier commit (a git worktree of it, run the same way).
- Calls lost: non-2xx answers during scale-up, scale-down and standby (0 expected).

Needs `wrk` (`make bench` installs it) and PostgreSQL's server programs for the idle section.
Usage: python benchmarks/autoscaling.py [--before b844ebb] [--skip-idle]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from endpoint_latency import wrk

from rayline.local_platform import LocalPlatform

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.databases: the throwaway PostgreSQL server the tests use

MODULE = """
import time

def sleep_100ms():
    time.sleep(0.1)
    return {}

def trivial():
    return {}
"""


def serving(sdk, name) -> int:
    return sum(1 for pod in sdk.get_deployment(name)["pods"] if pod["status"] == "running")


def wait_for(condition, timeout_s: float, what: str) -> float:
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"not within {timeout_s} s: {what}")
        time.sleep(0.2)
    return time.monotonic() - began


def measure(platform: LocalPlatform, sdk, folder: Path, max_pods: int) -> dict:
    name = f"sleep-100ms-max{max_pods}"
    deployment = sdk.create_deployment(
        "sleep-100ms", name, "endpoint", mode="low_latency", min_pods=1, max_pods=max_pods, scale_down_after_s=5
    )
    url = f"{platform.url}/endpoints/{deployment['endpoint_url_path']}"
    token = deployment["endpoint_token"]
    entry: dict = {}
    if max_pods > 1:  # from the load's start until a second pod answers
        second: dict = {}
        began = time.monotonic()

        def watch() -> None:
            wait_for(lambda: serving(sdk, name) >= 2, 60, "a second pod")
            second["s"] = round(time.monotonic() - began, 2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        ramp = wrk(url, token, 12, 2, 15, folder, body="{}")
        watcher.join()
        entry["second_pod_serving_after_s"] = second.get("s")
        entry["ramp_15s"] = {k: ramp[k] for k in ("requests_per_s", "non_2xx", "socket_errors")}
        entry["pods_at_steady_state"] = serving(sdk, name)
    else:
        wrk(url, token, 12, 2, 3, folder, body="{}")  # warm-up
    steady = wrk(url, token, 12, 2, 10, folder, body="{}")
    entry.update(calls_per_s=steady["requests_per_s"], p50_ms=steady["p50_ms"], non_2xx=steady["non_2xx"])
    if max_pods > 1:  # load stops but for one caller: the extra pods go, and no call is lost
        statuses: list[int] = []
        headers = {"Authorization": f"EndpointToken {token}"}
        with httpx.Client(timeout=60) as client:

            def one_call_then_one_pod() -> bool:
                statuses.append(client.post(url, json={}, headers=headers).status_code)
                return serving(sdk, name) == 1

            entry["back_to_1_pod_after_s"] = round(wait_for(one_call_then_one_pod, 120, "back to one pod"), 1)
        entry["scale_down_calls"] = len(statuses)
        entry["scale_down_non_2xx"] = sum(1 for s in statuses if s != 200)
    sdk.delete_deployment(name)
    return entry


def throughput(platform: LocalPlatform, sdk, folder: Path) -> dict:
    result = {f"max_pods_{n}": measure(platform, sdk, folder, n) for n in (1, 3)}
    result["ratio_3_pods_to_1"] = round(result["max_pods_3"]["calls_per_s"] / result["max_pods_1"]["calls_per_s"], 2)
    return result


def pod_rss_bytes(name: str) -> int:
    """Resident memory of the processes of the deployment's pods (Ray names them after it)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"ServeReplica:{name}:" not in (entry / "cmdline").read_text():
                continue
            rss_pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += rss_pages * os.sysconf("SC_PAGE_SIZE")
    return total


def wake(platform: LocalPlatform, sdk, wakes: int = 5) -> dict:
    name = "trivial-standby"
    deployment = sdk.create_deployment(
        "trivial", name, "endpoint", mode="low_latency", min_pods=0, max_pods=1, standby_after_s=2
    )
    url = f"{platform.url}/endpoints/{deployment['endpoint_url_path']}"
    headers = {"Authorization": f"EndpointToken {deployment['endpoint_token']}"}
    up_rss = pod_rss_bytes(name)
    seconds, rss, statuses = [], [], []
    for _ in range(wakes):
        wait_for(lambda: sdk.get_deployment(name)["status"] == "standby", 120, "standby")
        time.sleep(1)
        rss.append(pod_rss_bytes(name))
        began = time.monotonic()
        statuses.append(httpx.post(url, json={}, headers=headers, timeout=120).status_code)
        seconds.append(round(time.monotonic() - began, 3))
    sdk.delete_deployment(name)
    return {
        "first_call_answered_p50_s": round(statistics.median(seconds), 3),
        "first_call_answered_s": seconds,
        "statuses": statuses,
        "pod_rss_mib_when_up": round(up_rss / 1024**2, 1),
        "pod_rss_bytes_in_standby": rss,
    }


def _statements(log: Path, offset: int) -> tuple[int, int]:
    """(statements, transactions) the server logged since ``offset`` bytes."""
    text = log.read_text(errors="replace")[offset:]
    lines = re.findall(r"LOG:\s+(?:statement|execute [^:]*):\s*(.*)", text)
    control = sum(1 for line in lines if re.match(r"(BEGIN|COMMIT|ROLLBACK)\b", line.strip(), re.I))
    return len(lines) - control, sum(1 for line in lines if re.match(r"BEGIN\b", line.strip(), re.I))


def idle_statements(tree: Path | None, folder: Path, pods: int = 3, window_s: float = 30) -> dict:
    """Statements per idle pod per minute, for the platform in ``tree`` (None: this one)."""
    from tests.databases import PostgresServer

    server = PostgresServer()
    try:
        url = server.new_database()
        database = url.rsplit("/", 1)[1]
        import sqlalchemy

        engine = sqlalchemy.create_engine(server.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'"))
        engine.dispose()
        env = {"RAYLINE_DATABASE_URL": url}
        if tree is not None:
            env["PYTHONPATH"] = f"{tree / 'platform'}:{tree}"
        platform = LocalPlatform(folder / f"home-idle-{tree.name if tree else 'now'}", extra_env=env)
        # Ray puts its driver's working directory first on its workers' path: the tree's, then.
        here = os.getcwd()
        os.chdir(tree or ROOT)
        try:
            platform.start()
        finally:
            os.chdir(here)
        log = server._root / "server.log"
        try:
            sdk = platform.sdk()
            sdk.create_pipeline(
                "trivial", "main.py", "trivial", container_config={"local_folder": str(folder / "pipeline")}
            )
            time.sleep(5)
            offset = len(log.read_text(errors="replace"))
            time.sleep(window_s)
            base, base_tx = _statements(log, offset)
            for i in range(pods):
                sdk.create_deployment("trivial", f"idle-{i}", "endpoint", mode="low_latency")
            time.sleep(15)  # settled: registered, imported, following
            offset = len(log.read_text(errors="replace"))
            time.sleep(window_s)
            loaded, loaded_tx = _statements(log, offset)
        finally:
            platform.stop()
    finally:
        server.stop()
    per_minute = 60 / window_s
    return {
        "statements_per_idle_pod_per_minute": round((loaded - base) * per_minute / pods, 2),
        "transactions_per_idle_pod_per_minute": round((loaded_tx - base_tx) * per_minute / pods, 2),
        "control_plane_alone_statements_per_minute": round(base * per_minute, 1),
        "pods": pods,
        "window_s": window_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="a commit to measure idle pods' statements against")
    parser.add_argument("--skip-idle", action="store_true")
    args = parser.parse_args()
    result: dict = {"benchmark": "autoscaling"}
    with tempfile.TemporaryDirectory(prefix="rayline-bench-") as tmp:
        folder = Path(tmp)
        (folder / "pipeline").mkdir()
        (folder / "pipeline" / "main.py").write_text(MODULE)
        platform = LocalPlatform(folder / "home")
        platform.start()
        try:
            sdk = platform.sdk()
            for function in ("sleep_100ms", "trivial"):
                sdk.create_pipeline(
                    function.replace("_", "-"),
                    "main.py",
                    function,
                    container_config={"local_folder": str(folder / "pipeline")},
                )
            result["throughput_12_callers"] = throughput(platform, sdk, folder)
            result["wake_from_standby"] = wake(platform, sdk)
        finally:
            left = platform.stop()
        result["processes_left"] = left
        if not args.skip_idle:
            result["idle_pods"] = {"now": idle_statements(None, folder)}
            if args.before:  # measured the same way, on a worktree of that commit
                tree = folder / f"before-{args.before}"
                subprocess.run(
                    ["git", "worktree", "add", "-q", "--detach", str(tree), args.before], cwd=ROOT, check=True
                )
                try:
                    result["idle_pods"][f"before_{args.before}"] = idle_statements(tree, folder)
                finally:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    lost = result["throughput_12_callers"]
    result["calls_lost"] = {
        "scale_up": lost["max_pods_3"]["ramp_15s"]["non_2xx"] + lost["max_pods_3"]["non_2xx"],
        "scale_down": lost["max_pods_3"]["scale_down_non_2xx"],
        "standby_wakes": sum(1 for s in result["wake_from_standby"]["statuses"] if s != 200),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
