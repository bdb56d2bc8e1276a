import contextlib
import threading
import time

import httpx
import pytest

from rayline import Input, Output, SdkException
from tests.integration.conftest import unique, write_folder
from tests.support import wait_until

COUNTER = {
    "main.py": """
        import os
        import sys

        print("preloading at import")
        CALLS = {"n": 0}

        def handler(x, crash=False):
            CALLS["n"] += 1
            print(f"call {CALLS['n']} with {x}")
            print("a stderr line", file=sys.stderr)
            if crash:
                os._exit(1)
            if x == 13:
                raise ValueError("unlucky 13")
            return {"y": x * 2, "calls": CALLS["n"], "pid": os.getpid()}
    """,
}


@pytest.fixture(scope="module")
def counter_pipeline(platform, tmp_path_factory):
    sdk = platform.sdk()
    name = unique("counter")
    folder = write_folder(tmp_path_factory.mktemp("counter"), COUNTER)
    sdk.create_pipeline(
        name,
        "main.py",
        "handler",
        container_config={"local_folder": str(folder)},
        inputs=[Input("x", "number"), Input("crash", "boolean", is_required=False)],
        outputs=[Output("y", "number"), Output("calls", "number"), Output("pid", "number")],
    )
    yield name
    sdk.delete_pipeline(name, force_deployments_deletion=True)


def call(platform, deployment, x, token=None, **extra):
    token = token or deployment["endpoint_token"]
    return httpx.post(
        f"{platform.url}/endpoints/{deployment['endpoint_url_path']}",
        json={"x": x, **extra},
        headers={"Authorization": f"EndpointToken {token}"},
        timeout=120,
        follow_redirects=True,
    )


def readable_within_1s(sdk, execution_id, status):
    """A warm pod writes records in batches, off the response's path: at most 1 s late."""

    def read():
        try:
            execution = sdk.get_pipeline_execution(execution_id)
        except SdkException as error:
            if error.status_code != 404:
                raise
            return None
        return execution if execution["status"] == status else None

    return wait_until(read, 1.0, f"{execution_id} {status} 1 s after the response")


def logs_text(lines):
    return "\n".join(line["message"] for line in lines)


@pytest.mark.parametrize("mode", ["low_latency", "elastic"])
def test_an_endpoint_in_each_mode(platform, sdk, counter_pipeline, mode):
    name = unique(mode.replace("_", "-"))
    deployment = sdk.create_deployment(
        counter_pipeline, name, "endpoint", mode=mode, endpoint_url_path=f"{name}-path", description="doubles x"
    )
    assert deployment["status"] == "up" and deployment["mode"] == mode
    assert deployment["endpoint_url_path"] == f"{name}-path" and len(deployment["endpoint_token"]) >= 32
    assert deployment["pipeline"] == {"name": counter_pipeline}

    first, second = (call(platform, deployment, x) for x in (1, 2))
    assert first.status_code == 200 and second.status_code == 200
    assert first.json()["output"]["y"] == 2 and second.json()["output"]["y"] == 4
    ids = [int(r.json()["execution_id"].removeprefix(f"{name}-")) for r in (first, second)]
    assert ids == [1, 2]  # named after the deployment, numbered from 1
    if mode == "low_latency":  # one warm process: globals are shared by the calls
        assert first.json()["output"]["pid"] == second.json()["output"]["pid"]
        assert second.json()["output"]["calls"] == first.json()["output"]["calls"] + 1
    else:  # a fresh process each time: nothing is shared
        assert first.json()["output"]["pid"] != second.json()["output"]["pid"]
        assert first.json()["output"]["calls"] == second.json()["output"]["calls"] == 1

    # Each call is an execution record of the deployment, with its own logs, within 1 s.
    execution_id = second.json()["execution_id"]
    execution = readable_within_1s(sdk, execution_id, "Succeeded")
    assert execution["deployment_name"] == name and execution["pipeline_name"] == counter_pipeline
    assert execution["inputs"][0]["source"] == "endpoint"
    lines = sdk.get_pipeline_execution_logs(execution_id)
    assert ("stdout", f"call {execution['outputs'][1]['value']} with 2") in [
        (line["stream"], line["message"]) for line in lines
    ]
    assert "a stderr line" in logs_text(lines) and "with 1" not in logs_text(lines)
    assert sdk.get_deployment(name)["last_execution_id"] == execution_id

    # Bad input: 400 naming the input; a user error: 500 with a message, the execution Failed.
    bad = httpx.post(
        f"{platform.url}/endpoints/{name}-path",
        json={"x": "two"},
        headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"},
    )
    assert bad.status_code == 400 and "Input 'x'" in bad.json()["message"]
    failed = call(platform, deployment, 13)
    assert failed.status_code == 500 and "unlucky 13" in failed.json()["message"]
    failed_id = failed.json()["execution_id"]
    readable_within_1s(sdk, failed_id, "Failed")
    assert "Traceback" in logs_text(sdk.get_pipeline_execution_logs(failed_id))

    # Wrong or missing tokens: 401 with a message.
    assert call(platform, deployment, 1, token="not-the-token").status_code == 401
    missing = httpx.post(f"{platform.url}/endpoints/{name}-path", json={"x": 1})
    assert missing.status_code == 401 and "EndpointToken" in missing.json()["message"]

    # The SDK's ways in: with the SDK token through the API, and with the endpoint token.
    assert sdk.trigger_endpoint(name, inputs={"x": 5})["outputs"]["y"] == 10
    triggered = sdk.trigger_endpoint(name, endpoint_token=deployment["endpoint_token"], inputs={"x": 6})
    assert triggered["outputs"]["y"] == 12
    assert (
        sdk.retrieve_endpoint_results(name, triggered["execution_id"], deployment["endpoint_token"])["outputs"]["y"]
        == 12
    )

    assert name in [d["name"] for d in sdk.list_deployments()]
    assert sdk.delete_deployment(name) == {"name": name, "execution_rule": "endpoint"}
    gone = call(platform, deployment, 1)
    # Its token opens nothing any more: the same 401 as at a path where no deployment ever was.
    assert gone.status_code == 401 and "EndpointToken" in gone.json()["message"]
    assert sdk.get_pipeline_execution(execution_id)["status"] == "Succeeded"  # history stays


def test_low_latency_logs_rotation_disable_enable_reload(platform, sdk, counter_pipeline):
    name = unique("warm")
    deployment = sdk.create_deployment(counter_pipeline, name, "endpoint", mode="low_latency")
    pod = deployment["pods"][0]
    assert pod["status"] == "running" and deployment["version"]["number"] == 1
    assert call(platform, deployment, 1).status_code == 200
    expected = ("created", "Importing pipeline module main.py", "preloading at import", "Module imported")
    text = [""]

    def all_logged() -> bool:
        text[0] = logs_text(sdk.get_deployment_logs(name))
        return all(line in text[0] for line in expected)

    wait_until(all_logged, 10, lambda: f"the pod's start and its first call logged: {expected} in {text[0]!r}")
    lines = sdk.get_deployment_logs(name, limit=2)
    assert len(lines) == 2 and set(lines[0]) == {"timestamp", "message", "stream", "pod_id", "type"}

    # Rotation: the old token stops at once, the pod keeps running (its globals survive).
    calls_before = call(platform, deployment, 1).json()["output"]["calls"]
    new_token = sdk.generate_new_endpoint_token(name)["endpoint_token"]
    assert call(platform, deployment, 1).status_code == 401
    rotated = call(platform, deployment, 1, token=new_token).json()["output"]
    assert rotated["calls"] == calls_before + 1
    chosen = "a-chosen-token-of-some-length"
    assert sdk.generate_new_endpoint_token(name, endpoint_token=chosen) == {"endpoint_token": chosen}
    assert sdk.get_deployment(name)["endpoint_token"] == chosen

    # Disable: calls refused, pod stopped. Enable: a new pod, globals reset.
    disabled = sdk.update_deployment(name, is_enabled=False)
    assert disabled["status"] == "disabled" and disabled["is_enabled"] is False
    assert not [p for p in disabled["pods"] if p["status"] == "running"]
    refused = call(platform, deployment, 1, token=chosen)
    assert refused.status_code == 503 and "disabled" in refused.json()["message"]
    enabled = sdk.update_deployment(name, is_enabled=True)
    assert enabled["status"] == "up" and enabled["version"]["number"] == 2
    assert call(platform, deployment, 1, token=chosen).json()["output"]["calls"] == 1

    # Reload with no change: a new pod imports the module again; a new version. The new pod is
    # ready before the old one stops: calls made meanwhile all succeed.
    before = call(platform, deployment, 1, token=chosen).json()["output"]
    old_pods = [p["pod_id"] for p in sdk.get_deployment(name)["pods"] if p["status"] == "running"]
    assert len(old_pods) == 1
    statuses, stop = [], threading.Event()

    def keep_calling():
        while not stop.is_set():
            statuses.append(call(platform, deployment, 1, token=chosen).status_code)
            time.sleep(0.05)

    caller = threading.Thread(target=keep_calling)
    caller.start()
    reloaded = sdk.update_deployment(name)
    # Past the old pod's draining: until it has stopped (it logs so as its replica ends), then a
    # few more calls, which reach the new pod only.
    wait_until(
        lambda: f"Pod {old_pods[0]} stopping." in logs_text(sdk.get_deployment_logs(name)),
        60,
        f"the old pod {old_pods[0]} stopped after the reload",
    )
    calls_at_stop = len(statuses)
    wait_until(lambda: len(statuses) >= calls_at_stop + 5, 30, "5 calls after the old pod stopped")
    stop.set()
    caller.join()
    assert len(statuses) > 20 and set(statuses) == {200}
    assert reloaded["version"]["number"] == 3 and reloaded["status"] == "up"
    assert [p["version"] for p in reloaded["pods"] if p["status"] == "running"] == [3]
    after = call(platform, deployment, 1, token=chosen).json()["output"]
    # Another process, whose counter started again (one process would count every call).
    assert after["pid"] != before["pid"] and after["calls"] < before["calls"] + len(statuses)
    sdk.delete_deployment(name)


def test_a_crashing_pod_is_restarted_and_its_execution_ends_in_error(platform, sdk, counter_pipeline):
    name = unique("crash")
    deployment = sdk.create_deployment(counter_pipeline, name, "endpoint", mode="low_latency")
    before = call(platform, deployment, 1).json()["output"]
    # Serve's HAProxy closes the connection when the pod dies mid-call; else a 5xx
    with contextlib.suppress(httpx.RemoteProtocolError):
        assert call(platform, deployment, 1, crash=True).status_code >= 500

    def answered_again() -> httpx.Response | None:
        if sdk.get_deployment(name)["status"] != "up":
            return None
        probe = call(platform, deployment, 2)
        return probe if probe.status_code == 200 else None

    probe = wait_until(answered_again, 120, "the pod back up and answering", interval_s=1)
    assert probe.json()["output"]["pid"] != before["pid"] and probe.json()["output"]["calls"] == 1  # a new pod
    # The crashed call got no answer, but it has its record (saved from the dead pod's journal),
    # ended in Error, with what it printed before dying.
    mine = [
        sdk.get_pipeline_execution(e["execution_id"])
        for e in sdk.list_pipeline_executions(counter_pipeline)
        if e["deployment_name"] == name
    ]
    crashed = [
        e
        for e in mine
        if {"pipeline_input_name": "crash", "value": True}.items()
        <= {k: v for i in e["inputs"] if i["pipeline_input_name"] == "crash" for k, v in i.items()}.items()
    ]
    assert len(crashed) == 1 and crashed[0]["status"] == "Error"
    assert "stopped" in crashed[0]["error"]
    assert "a stderr line" in logs_text(sdk.get_pipeline_execution_logs(crashed[0]["execution_id"]))
    assert all(e["status"] in ("Succeeded", "Error") for e in mine)
    sdk.delete_deployment(name)


def test_an_import_error_is_creation_failed_with_the_traceback_in_the_logs(platform, sdk, tmp_path):
    pipeline = unique("broken")
    folder = write_folder(tmp_path, {"main.py": "import no_such_module_here\n\ndef f():\n    return {}\n"})
    sdk.create_pipeline(pipeline, "main.py", "f", container_config={"local_folder": str(folder)})
    name = unique("broken-dep")
    with pytest.raises(SdkException) as info:
        sdk.create_deployment(pipeline, name, "endpoint", mode="low_latency", timeout_s=180)
    assert info.value.name == "CreationFailedException"
    assert "No module named 'no_such_module_here'" in info.value.message
    assert sdk.get_deployment(name)["status"] == "creation_failed"
    assert "Traceback" in logs_text(sdk.get_deployment_logs(name))
    sdk.delete_pipeline(pipeline, force_deployments_deletion=True)
    assert name not in [d["name"] for d in sdk.list_deployments()]


def test_bad_deployment_requests_are_clear_400s_and_409s(sdk, counter_pipeline):
    name = unique("dep")
    sdk.create_deployment(counter_pipeline, name, "endpoint", mode="elastic")
    cases = [
        (dict(deployment_name=name), 409, "already exists"),
        (dict(deployment_name=unique("other"), endpoint_url_path=name), 409, "endpoint_url_path"),
        (dict(deployment_name="Bad Name"), 400, "deployment name"),
        (dict(deployment_name=unique("x"), ram_request="lots"), 400, "ram_request"),
        (dict(deployment_name=unique("x"), mode="low_latency", ram_request="lots"), 400, "ram_request"),
        (
            dict(deployment_name=unique("x"), mode="low_latency", max_parallel_executions_per_pod=4),
            400,
            "enable_parallel_executions",
        ),
        (dict(deployment_name=unique("x"), endpoint_token="short"), 400, "endpoint_token"),
        (dict(deployment_name=unique("x"), execution_timeout_s=-1), 400, "execution_timeout_s"),
    ]
    for kwargs, status, fragment in cases:
        with pytest.raises(SdkException) as info:
            sdk.create_deployment(counter_pipeline, execution_rule="endpoint", **kwargs)
        assert info.value.status_code == status and fragment in info.value.message, kwargs
    with pytest.raises(SdkException) as info:
        sdk.delete_pipeline(counter_pipeline)
    assert info.value.status_code == 409 and "force_deployments_deletion" in info.value.message
    with pytest.raises(ValueError):
        sdk.create_deployment(counter_pipeline, unique("x"), "sometimes")
    with pytest.raises(SdkException) as info:
        sdk.get_deployment("no-such-deployment")
    assert info.value.status_code == 404
    sdk.delete_deployment(name)


def test_an_answered_execution_is_readable_at_once_everywhere(platform, sdk, counter_pipeline):
    """Read-your-writes: a warm pod answers before its batch writer commits, so a read that would
    miss one of its executions has the pod commit first. Every read, right after each answer."""
    name = unique("ryw")
    deployment = sdk.create_deployment(counter_pipeline, name, "endpoint", mode="low_latency")
    misses = []
    for x in range(25):
        answer = call(platform, deployment, x if x != 13 else 12)
        assert answer.status_code == 200
        execution_id, sent = answer.json()["execution_id"], x if x != 13 else 12
        # Each read is called in this iteration: the defaults only bind what it reads.
        reads = {
            "get": lambda e=execution_id: sdk.get_pipeline_execution(e)["status"] == "Succeeded",
            "logs": lambda e=execution_id, sent=sent: f"with {sent}" in logs_text(sdk.get_pipeline_execution_logs(e)),
            "output": lambda e=execution_id, sent=sent: (
                sdk.retrieve_pipeline_execution_outputs(e)["outputs"]["y"] == 2 * sent
            ),
            "list": lambda e=execution_id: (
                e in {row["execution_id"] for row in sdk.list_pipeline_executions(counter_pipeline)}
            ),
            "latest": lambda e=execution_id: sdk.get_deployment(name)["last_execution_id"] == e,
        }
        for what, read in reads.items():
            try:
                if not read():
                    misses.append(f"{execution_id} {what}")
            except SdkException as error:
                misses.append(f"{execution_id} {what}: {error}")
        if x % 4 == 0:  # through the API too: the execution id in a 4xx/5xx body
            failed = call(platform, deployment, 13)
            assert failed.status_code == 500
            assert sdk.get_pipeline_execution(failed.json()["execution_id"])["status"] == "Failed"
    assert misses == []
    sdk.delete_deployment(name)
