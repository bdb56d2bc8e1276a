"""Rayline on a real three-node Ray cluster on this machine, as an operator runs it: `ray start
--head` and two worker nodes joined with `--address` (Ray's token authentication on, packages
downloaded by the nodes from the control plane with the package token), then
`rayline up --ray-address`. User code runs on the worker nodes only (RAYLINE_USER_CODE_RESOURCES
and a resource the head does not offer); each node's processes know its name (NODE_NAME).

The last test kills a worker node (SIGKILL to its raylet and every process it runs) under load.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from rayline import Input, Output, SdkException
from rayline.local_platform import LocalPlatform, session_pids
from tests.integration.conftest import unique, write_folder
from tests.ray_nodes import RayNodes
from tests.support import wait_until

pytestmark = pytest.mark.integration

USER_CODE = "user-code"
MODULE = {
    "main.py": """
        import os
        import time

        PID_AT_IMPORT = os.getpid()

        def where(x, seconds=0.0):
            print(f"running on {os.environ.get('NODE_NAME')} with {x}")
            time.sleep(seconds)
            return {"node": os.environ.get("NODE_NAME", "?"), "pid": os.getpid(), "y": x * 2}
    """,
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("multinode")
    package_token = secrets.token_hex(16)
    # The nodes download packages from the control plane with the package token (as the README
    # tells operators); the platform's URL is known before anything starts.
    nodes = RayNodes(root / "ray", env={"RAY_RUNTIME_ENV_BEARER_TOKEN": package_token})
    platform = LocalPlatform(
        root / "home",
        ray_address=nodes.address,
        extra_env={
            **nodes.auth_env,
            "RAYLINE_PACKAGE_TOKEN": package_token,
            "RAYLINE_USER_CODE_RESOURCES": json.dumps({USER_CODE: 0.01}),
            "RAYLINE_RESOURCE_METRICS_INTERVAL_S": "1",
        },
    )
    platform.env["RAYLINE_PACKAGE_URL_BASE"] = platform.url
    try:
        nodes.start_head(num_cpus=1, env={"NODE_NAME": "head"})
        nodes.wait_for_nodes(1)
        # One at a time: a 2-core machine is slow. Two CPUs each (in Ray's accounting): an
        # elastic execution holds one while it runs, and the tests run four at once.
        for count, name in enumerate(("a", "b"), start=2):
            nodes.add_node(name, num_cpus=2, resources={USER_CODE: 100}, env={"NODE_NAME": name})
            nodes.wait_for_nodes(count)
        platform.start()
        yield nodes, platform
    finally:
        left = platform.stop()
        left += nodes.stop()
    assert left == [], f"processes left after stopping: {left}"


@pytest.fixture(scope="module")
def sdk(cluster):
    with cluster[1].sdk() as client:
        yield client


@pytest.fixture(scope="module")
def pipeline(sdk, tmp_path_factory):
    name = unique("where")
    sdk.create_pipeline(
        name,
        "main.py",
        "where",
        container_config={"local_folder": str(write_folder(tmp_path_factory.mktemp("where"), MODULE))},
        inputs=[Input("x", "number"), Input("seconds", "number", is_required=False)],
        outputs=[Output("node", "string"), Output("pid", "number"), Output("y", "number")],
    )
    return name


def call(platform, deployment, x, timeout=30, **inputs):
    return httpx.post(
        f"{platform.url}/endpoints/{deployment['endpoint_url_path']}",
        json={"x": x, **inputs},
        headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"},
        timeout=timeout,
        follow_redirects=True,
    )


@pytest.mark.periodic
def test_pipelines_elastic_runs_and_a_warm_pod_on_the_worker_nodes(cluster, sdk, pipeline):
    nodes, platform = cluster
    # A periodic deployment first: its first run is due within a minute, checked at the end.
    periodic = unique("every-minute")
    sdk.create_deployment(
        pipeline, periodic, "periodic", mode="elastic", schedule="* * * * *", inputs_mapping=_constant_x(7)
    )

    # Elastic runs: each in a fresh process, spread over the worker nodes (never the head).
    runs = [sdk.run_pipeline(pipeline, {"x": x, "seconds": 1.0}, wait_for_completion=False) for x in range(4)]
    outputs = [sdk.retrieve_pipeline_execution_outputs(run["execution_id"])["outputs"] for run in runs]
    assert [o["y"] for o in outputs] == [0, 2, 4, 6]
    assert {o["node"] for o in outputs} == {"a", "b"}, outputs
    assert len({o["pid"] for o in outputs}) == 4
    logs = sdk.get_pipeline_execution_logs(runs[3]["execution_id"])
    assert any("with 3" in line["message"] for line in logs)

    # A warm pod on a worker node, called through its endpoint; its records and logs are kept.
    name = unique("warm")
    deployment = sdk.create_deployment(pipeline, name, "endpoint", mode="low_latency", endpoint_url_path=name)
    assert deployment["status"] == "up"
    answers = [call(platform, deployment, x) for x in range(5)]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert {a.json()["output"]["node"] for a in answers} <= {"a", "b"}
    assert len({a.json()["output"]["pid"] for a in answers}) == 1  # one warm process
    last = answers[-1].json()["execution_id"]
    assert wait_until(lambda: sdk.get_pipeline_execution(last)["status"] == "Succeeded", 5, last)
    assert any("with 4" in line["message"] for line in sdk.get_pipeline_execution_logs(last))
    pod_lines = [line["message"] for line in sdk.get_deployment_logs(name)]
    assert any("Module imported" in line for line in pod_lines), pod_lines

    # The periodic deployment ran once within its minute, on a worker node.
    def ran():
        executions = [e for e in sdk.list_pipeline_executions(pipeline) if e["deployment_name"] == periodic]
        return executions if executions and executions[0]["status"] == "Succeeded" else None

    executions = wait_until(ran, 75, "a periodic run")
    assert sdk.retrieve_pipeline_execution_outputs(executions[0]["execution_id"])["outputs"]["node"] in ("a", "b")
    sdk.delete_deployment(periodic)
    sdk.delete_deployment(name)


def _constant_x(value):
    from rayline import InputSource

    return [InputSource("x", constant_value=value), InputSource("seconds", constant_value=0)]


def _control_plane_pid(head) -> int:
    """The control plane's process: a worker of the head node (never another platform's)."""
    for pid in session_pids(head.sid):
        try:
            if b"ServeReplica:rayline:control-plane" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise AssertionError("no control plane process on the head node")


def test_resource_metrics_have_a_series_for_each_node(sdk):
    """The control plane, on the head, reads each node's own metrics agent: a worker series for
    each of the three nodes, the head among them."""
    start = datetime.now(UTC) - timedelta(minutes=10)

    def every_node_twice():  # a network rate needs two samples of a node
        answer = sdk.get_resource_metrics(start, datetime.now(UTC))
        metrics = answer["metrics"]
        seen = [{s["metric"]["worker"] for s in metrics[name]} for name in ("cpu_usage", "network_input_usage")]
        return answer if all(len(workers) == 3 for workers in seen) else None

    answer = wait_until(every_node_twice, 60, "resource samples of the three nodes", interval_s=0.5)
    for name, series in answer["metrics"].items():
        assert len({s["metric"]["worker"] for s in series}) == 3, name
        assert [s["metric"]["is_head"] for s in series].count(True) == 1, name
        if name in ("cpu_usage", "disk_usage", "ram_usage"):  # percent; the network's are bytes per second
            assert all(0 <= value <= 100 for s in series for _, value in s["values"]), name
    assert answer["additional_data"]["total_ram"] > 0 and answer["additional_data"]["total_disk"] > 0


def test_what_a_control_plane_that_died_ran_ends_and_warm_pods_live_on(cluster, sdk, pipeline):
    nodes, platform = cluster
    name = unique("lives-on")
    deployment = sdk.create_deployment(pipeline, name, "endpoint", mode="low_latency", endpoint_url_path=name)
    pod_pid = call(platform, deployment, 1).json()["output"]["pid"]
    run = sdk.run_pipeline(pipeline, {"x": 1, "seconds": 120}, wait_for_completion=False)
    wait_until(lambda: sdk.get_pipeline_execution(run["execution_id"])["status"] == "Running", 60, "a long run")

    os.kill(_control_plane_pid(nodes.nodes[0]), signal.SIGKILL)  # Serve starts another; `rayline up` goes on

    def ended():
        try:
            execution = sdk.get_pipeline_execution(run["execution_id"])
        except (SdkException, httpx.HTTPError):
            return None  # the new control plane is not up yet
        return execution if execution["status"] not in ("Running", "Pending") else None

    execution = wait_until(ended, 120, "the long run ended by the new control plane")
    assert execution["status"] == "Error" and "control plane" in execution["error"], execution
    answer = call(platform, deployment, 2)  # the pod lived on, and records through the new one
    assert answer.status_code == 200 and answer.json()["output"]["pid"] == pod_pid
    assert wait_until(
        lambda: sdk.get_pipeline_execution(answer.json()["execution_id"])["status"] == "Succeeded", 10, "its record"
    )
    sdk.delete_deployment(name)


def test_a_node_lost_under_load(cluster, sdk, pipeline):
    nodes, platform = cluster
    name = unique("survivor")
    deployment = sdk.create_deployment(
        pipeline,
        name,
        "endpoint",
        mode="low_latency",
        endpoint_url_path=name,
        enable_parallel_executions=True,
        max_parallel_executions_per_pod=8,
    )
    victim_name = call(platform, deployment, 0).json()["output"]["node"]
    victim = next(node for node in nodes.nodes if node.name == victim_name)

    # Callers keep calling the warm deployment; elastic runs are in flight on both worker nodes.
    answered: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def keep_calling(index: int) -> None:
        x = index * 100_000
        while not stop.is_set():
            x += 1
            try:
                response = call(platform, deployment, x, timeout=20)
            except httpx.HTTPError as error:
                failures.append(type(error).__name__)
                continue
            if response.status_code == 200:
                answered.append(response.json()["execution_id"])
            else:
                failures.append(str(response.status_code))
                time.sleep(0.05)

    callers = [threading.Thread(target=keep_calling, args=(i,), daemon=True) for i in range(4)]
    for thread in callers:
        thread.start()
    # Long elastic runs (45 s each), on both worker nodes: each says where it runs in its first log
    # line. The node dies once each worker node runs one of them, so that every run seen started is
    # still running then. Not all four may have started by then: Ray can hold a task for a worker
    # of its environment that is busy rather than start another, and run it when that one is free.
    long_runs = [
        sdk.run_pipeline(pipeline, {"x": x, "seconds": 45}, wait_for_completion=False)["execution_id"] for x in range(4)
    ]

    def node_of(execution_id):
        lines = sdk.get_pipeline_execution_logs(execution_id)
        return next((line["message"].split()[2] for line in lines if line["message"].startswith("running on")), None)

    def started():
        return {execution_id: node for execution_id in long_runs if (node := node_of(execution_id))}

    where = wait_until(
        lambda: (found := started()) and set(found.values()) == {"a", "b"} and found,
        90,
        lambda: f"a long elastic run started on each worker node (seen: {started()})",
    )
    time.sleep(1)
    before = len(answered)
    assert before > 0, failures[:5]
    killed_at = time.monotonic()
    victim.kill()

    # Back up by itself on the surviving node, within 60 s.
    def serving_again():
        try:
            response = call(platform, deployment, -1, timeout=5)
        except httpx.HTTPError:
            return None
        return response if response.status_code == 200 and response.json()["output"]["node"] != victim_name else None

    wait_until(serving_again, 60, "the deployment served by the surviving node")
    back_after_s = time.monotonic() - killed_at
    wait_until(lambda: sdk.get_deployment(name)["status"] == "up", 10, "the deployment up")
    time.sleep(3)  # and calls go on there
    stop.set()
    for thread in callers:
        thread.join(30)
    after = len(answered) - before
    assert after > 0

    # Every call answered 200, before or after, keeps its Succeeded record.
    def recorded(execution_id):
        try:
            return sdk.get_pipeline_execution(execution_id)["status"]
        except SdkException as error:
            return f"missing ({error.status_code})"

    statuses = {execution_id: recorded(execution_id) for execution_id in answered}
    lost = {k: v for k, v in statuses.items() if v != "Succeeded"}
    assert not lost, f"{len(lost)} of {len(answered)} answered calls have no Succeeded record: {list(lost.items())[:5]}"

    # The elastic runs on the lost node end Error saying so; the others succeed.
    def ended(execution_id):
        execution = sdk.get_pipeline_execution(execution_id)
        return execution if execution["status"] not in ("Running", "Pending") else None

    ends = {
        execution_id: wait_until(lambda i=execution_id: ended(i), 120, "a long run's end") for execution_id in long_runs
    }

    def told(runs):
        return " | ".join(
            f"{e['execution_id']} {e['status']} {e['start_date']} {e['end_date']} logs: "
            + "; ".join(line["message"] for line in sdk.get_pipeline_execution_logs(e["execution_id"]))
            for e in runs
        )

    errors = [ends[i] for i, node in where.items() if node == victim_name]
    assert all(e["status"] == "Error" and "was lost" in (e["error"] or "") for e in errors), told(errors)
    others = [ends[i] for i, node in where.items() if node != victim_name]
    assert all(e["status"] == "Succeeded" for e in others), told(others)
    # A run still waiting for its worker when the node died then ran on the other node, or was
    # lost with it if Ray had already handed it to a worker there.
    waited = [ends[i] for i in long_runs if i not in where]
    assert all(
        (e["status"] == "Succeeded" and node_of(e["execution_id"]) != victim_name)
        or (e["status"] == "Error" and "was lost" in (e["error"] or ""))
        for e in waited
    ), told(waited)

    # Spare workers that lived on the lost node are never handed out: new runs all succeed.
    for x in range(4):
        assert sdk.run_pipeline(pipeline, {"x": x})["outputs"]["node"] != victim_name

    # What the pod on the lost node was running ended Error, and the deployment's logs say why.
    log = "\n".join(line["message"] for line in sdk.get_deployment_logs(name))
    assert "was lost with its node" in log, log[-2000:]
    executions = [e for e in sdk.list_pipeline_executions(pipeline) if e["deployment_name"] == name]
    unanswered = [e for e in executions if e["status"] != "Succeeded"]
    assert all(e["status"] == "Error" and "was lost" in e["error"] for e in unanswered), unanswered[:3]
    print(
        json.dumps(
            {
                "node_loss": {
                    "calls_answered": len(answered),
                    "answered_before_kill": before,
                    "records_succeeded": sum(v == "Succeeded" for v in statuses.values()),
                    "failed_calls": len(failures),
                    "elastic_ended_error_for_lost_node": sum(e["status"] == "Error" for e in ends.values()),
                    "elastic_not_started_at_kill": len(waited),
                    "pod_executions_ended_error_for_lost_node": len(unanswered),
                    "back_up_after_s": round(back_after_s, 1),
                }
            }
        )
    )
