"""Serverless low-latency deployments on real Ray Serve: several pods under load (Serve's own
autoscaler), back to min_pods when load stops, standby with min_pods=0 and a call that wakes it,
pod settings changed on running pods, and a change every pod follows. Delays are short here."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rayline import Input, Output
from tests.integration.conftest import unique, write_folder
from tests.integration.test_deployments import call, logs_text, readable_within_1s
from tests.support import wait_until

MODULE = {
    "main.py": """
        import os
        import threading
        import time

        LOCK = threading.Lock()
        RUNNING = {"now": 0, "most": 0}  # in this pod

        def handler(x, seconds=0.0):
            with LOCK:
                RUNNING["now"] += 1
                RUNNING["most"] = max(RUNNING["most"], RUNNING["now"])
            try:
                time.sleep(seconds or 0.0)
            finally:
                with LOCK:
                    RUNNING["now"] -= 1
            return {"y": x * 2, "pid": os.getpid(), "most": RUNNING["most"]}
    """,
}


@pytest.fixture(scope="module")
def pipeline(platform, tmp_path_factory):
    sdk = platform.sdk()
    name = unique("scaled")
    folder = write_folder(tmp_path_factory.mktemp("scaled"), MODULE)
    sdk.create_pipeline(
        name,
        "main.py",
        "handler",
        container_config={"local_folder": str(folder)},
        inputs=[Input("x", "number"), Input("seconds", "number", is_required=False)],
        outputs=[Output("y", "number"), Output("pid", "number"), Output("most", "number")],
    )
    yield name
    sdk.delete_pipeline(name, force_deployments_deletion=True)


def serving(sdk, name) -> list[dict]:
    return [pod for pod in sdk.get_deployment(name)["pods"] if pod["status"] == "running"]


def test_pods_are_added_under_load_and_removed_after_it(platform, sdk, pipeline):
    name = unique("load")
    deployment = sdk.create_deployment(
        pipeline, name, "endpoint", mode="low_latency", min_pods=1, max_pods=2, scale_down_after_s=2
    )
    assert (deployment["min_pods"], deployment["max_pods"], deployment["scale_down_after_s"]) == (1, 2, 2)
    assert len(serving(sdk, name)) == 1
    answered: list[httpx.Response] = []
    stop = time.monotonic() + 60

    def keep_calling(index: int) -> None:
        while time.monotonic() < stop:
            answered.append(call(platform, deployment, index, seconds=0.2))

    with ThreadPoolExecutor(6) as pool:
        for index in range(6):
            pool.submit(keep_calling, index)
        wait_until(lambda: len(serving(sdk, name)) == 2, 40, f"a second pod of {name} serving under load")
        stop = time.monotonic() + 3  # the new pod takes calls too, then load stops
    assert answered and all(r.status_code == 200 for r in answered), {r.status_code for r in answered}
    assert len({r.json()["output"]["pid"] for r in answered}) == 2  # both pods answered
    for response in answered[-5:]:
        readable_within_1s(sdk, response.json()["execution_id"], "Succeeded")

    wait_until(lambda: len(serving(sdk, name)) == 1, 60, f"{name} back to min_pods=1 once idle")
    logs = logs_text(sdk.get_deployment_logs(name))
    assert "Scaled to 2 pod(s)." in logs and "Scaled to 1 pod(s)." in logs
    # Every call answered 200 has its record, whichever pod answered it, the removed one too.
    for response in answered[::10]:
        assert sdk.get_pipeline_execution(response.json()["execution_id"])["status"] == "Succeeded"
    sdk.delete_deployment(name)


def test_standby_after_idle_and_a_call_wakes_it(platform, sdk, pipeline):
    name = unique("sleepy")
    deployment = sdk.create_deployment(
        pipeline, name, "endpoint", mode="low_latency", min_pods=0, max_pods=1, standby_after_s=2
    )
    assert deployment["status"] == "up"  # its first pod imported the module: it works
    first = call(platform, deployment, 1)
    assert first.status_code == 200
    wait_until(lambda: sdk.get_deployment(name)["status"] == "standby", 60, f"{name} in standby")
    assert serving(sdk, name) == []

    woken = call(platform, deployment, 21)  # waits while a pod starts and imports the module
    assert woken.status_code == 200 and woken.json()["output"]["y"] == 42
    assert woken.json()["output"]["pid"] != first.json()["output"]["pid"]  # a new pod
    readable_within_1s(sdk, woken.json()["execution_id"], "Succeeded")
    assert sdk.get_deployment(name)["status"] == "up"
    logs = logs_text(sdk.get_deployment_logs(name))
    assert "Standby after 2 s idle" in logs and "Woken by a call" in logs

    # Through the SDK token too (the API asks the pod through a Serve handle): once in standby again.
    wait_until(lambda: sdk.get_deployment(name)["status"] == "standby", 60, f"{name} in standby again")
    started = sdk.trigger_endpoint(name, inputs={"x": 2})
    assert started["outputs"]["y"] == 4
    sdk.delete_deployment(name)


def test_pod_settings_change_on_running_pods_and_every_pod_follows_a_change(platform, sdk, pipeline, api):
    name = unique("live")
    deployment = sdk.create_deployment(pipeline, name, "endpoint", mode="low_latency")
    assert (deployment["min_pods"], deployment["max_pods"]) == (1, 1)  # today's behaviour by default
    [first] = serving(sdk, name)

    updated = sdk.update_deployment(name, min_pods=2, max_pods=2)
    assert updated["version"]["number"] == deployment["version"]["number"]  # no reload
    wait_until(lambda: len(serving(sdk, name)) == 2, 60, f"{name} with 2 pods")
    assert first["pod_id"] in {pod["pod_id"] for pod in serving(sdk, name)}  # still running, not restarted

    # A rotated token is refused by every pod at once: the pods are told, they do not poll.
    old = deployment["endpoint_token"]
    new = sdk.generate_new_endpoint_token(name)["endpoint_token"]
    with ThreadPoolExecutor(4) as pool:
        refused = list(pool.map(lambda i: call(platform, deployment, i, token=old).status_code, range(12)))
        accepted = list(pool.map(lambda i: call(platform, deployment, i, token=new), range(12)))
    assert set(refused) == {401}
    assert {r.status_code for r in accepted} == {200}
    assert len({r.json()["output"]["pid"] for r in accepted}) == 2  # both pods took calls

    # A reload replaces every pod without failing a call.
    answered: list[httpx.Response] = []
    stop = time.monotonic() + 120

    def keep_calling() -> None:
        while time.monotonic() < stop:
            answered.append(call(platform, deployment, 3, token=new))

    with ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            pool.submit(keep_calling)
        reloaded = sdk.update_deployment(name)
        assert reloaded["version"]["number"] == deployment["version"]["number"] + 1
        wait_until(
            lambda: [p["version"] for p in serving(sdk, name)] == [reloaded["version"]["number"]] * 2,
            90,
            f"both pods of {name} replaced by the new version",
        )
        stop = time.monotonic() + 1
    assert answered and {r.status_code for r in answered} == {200}

    # Bad settings leave it as it was.
    for body, field in (
        ({"min_pods": 3, "max_pods": 2}, "max_pods"),
        ({"max_pods": 1000}, "max_pods"),
        ({"min_pods": -1}, "min_pods"),
        ({"scale_down_after_s": 0}, "scale_down_after_s"),
        ({"standby_after_s": "soon"}, "standby_after_s"),
        ({"min_pods": True}, "min_pods"),
    ):
        response = api.patch(f"/deployments/{name}", json=body)
        assert response.status_code == 400 and field in response.json()["message"], (body, response.text)
    kept = sdk.get_deployment(name)
    assert (kept["min_pods"], kept["max_pods"], kept["scale_down_after_s"]) == (2, 2, 60)

    sdk.update_deployment(name, is_enabled=False)
    assert call(platform, deployment, 1, token=new).status_code == 503
    sdk.delete_deployment(name)


def test_each_of_several_pods_runs_at_most_its_own_parallel_limit(platform, sdk, pipeline):
    name = unique("limits")
    deployment = sdk.create_deployment(
        pipeline,
        name,
        "endpoint",
        mode="low_latency",
        enable_parallel_executions=True,
        max_parallel_executions_per_pod=2,
        min_pods=2,
        max_pods=2,
    )
    wait_until(lambda: len(serving(sdk, name)) == 2, 60, f"{name} with 2 pods")
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda i: call(platform, deployment, i, seconds=0.5), range(30)))
    assert {r.status_code for r in responses} == {200}
    outputs = [r.json()["output"] for r in responses]
    assert len({o["pid"] for o in outputs}) == 2
    assert max(o["most"] for o in outputs) == 2  # per pod: never more than its 2 slots at once
    sdk.delete_deployment(name)


def test_pod_settings_are_refused_on_elastic_deployments_and_when_out_of_bounds(api, pipeline):
    base = {"pipeline_name": pipeline, "name": unique("bad")}
    for body, field in (
        ({"min_pods": 1}, "min_pods"),  # elastic
        ({"mode": "low_latency", "min_pods": 2, "max_pods": 1}, "max_pods"),
        ({"mode": "low_latency", "max_pods": 17}, "max_pods"),
        ({"mode": "low_latency", "max_pods": 0}, "max_pods"),
        ({"mode": "low_latency", "scale_down_after_s": -5}, "scale_down_after_s"),
        ({"mode": "low_latency", "standby_after_s": 0}, "standby_after_s"),
        ({"mode": "low_latency", "min_pods": 1.5}, "min_pods"),
    ):
        response = api.post("/endpoints", json={**base, **body})
        assert response.status_code == 400 and field in response.json()["message"], (body, response.text)
    assert api.get(f"/deployments/{base['name']}").status_code == 404  # nothing was created
