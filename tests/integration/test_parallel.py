"""Parallel executions in a warm replica: threads for `def`, coroutines for `async def`, an exact
limit (timed-out threads included), a bounded queue, timeouts and per-execution logs; and the
timeout of an elastic execution, whose worker process can be stopped."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rayline import Input, Output
from tests.integration.conftest import unique, write_folder
from tests.integration.test_deployments import logs_text

MODULE = {
    "main.py": """
        import asyncio
        import threading
        import time
        from concurrent.futures import ThreadPoolExecutor

        import rayline

        # How many calls of this module's functions run right now, and the most ever seen.
        LOCK = threading.Lock()
        RUNNING = {"now": 0, "most": 0}
        POOL = ThreadPoolExecutor(2)  # shared by every execution

        def _enter():
            with LOCK:
                RUNNING["now"] += 1
                RUNNING["most"] = max(RUNNING["most"], RUNNING["now"])

        def _leave():
            with LOCK:
                RUNNING["now"] -= 1

        def _result():
            return {"most": RUNNING["most"], "execution_id": rayline.current_execution_id()}

        def _talk(tag):
            me = rayline.current_execution_id()
            def from_thread():
                for i in range(5):
                    print(f"{tag} {me} thread {i} sees {rayline.current_execution_id()}")
                    time.sleep(0.01)
            thread = threading.Thread(target=from_thread)
            thread.start()
            for i in range(5):
                print(f"{tag} {me} main {i}")
                time.sleep(0.01)
            POOL.submit(lambda: print(f"{tag} {me} pool sees {rayline.current_execution_id()}")).result()
            thread.join()

        def sleeper(seconds, talk=False):
            _enter()
            try:
                if talk:
                    _talk("talk")
                time.sleep(seconds)
            finally:
                _leave()
            return _result()

        async def async_sleeper(seconds):
            _enter()
            try:
                await asyncio.sleep(seconds)
            finally:
                _leave()
            return _result()

        def _background():
            time.sleep(0.5)
            print("background thread: belongs to no execution")

        threading.Thread(target=_background, daemon=True).start()
    """,
}
INPUTS = [Input("seconds", "number"), Input("talk", "boolean", is_required=False)]
OUTPUTS = [Output("most", "number"), Output("execution_id", "string")]


@pytest.fixture(scope="module")
def pipelines(platform, tmp_path_factory):
    sdk = platform.sdk()
    folder = write_folder(tmp_path_factory.mktemp("parallel"), MODULE)
    names = {function: unique(function.replace("_", "-")) for function in ("sleeper", "async_sleeper")}
    for function, name in names.items():
        sdk.create_pipeline(
            name,
            "main.py",
            function,
            container_config={"local_folder": str(folder)},
            inputs=INPUTS[:1] if function == "async_sleeper" else INPUTS,
            outputs=OUTPUTS,
        )
    yield names
    for name in names.values():
        sdk.delete_pipeline(name, force_deployments_deletion=True)


@pytest.fixture
def deploy(sdk, pipelines):
    """Deploy one of the module's functions as a low-latency endpoint, deleted after the test."""
    created = []

    def deploy_(function: str, **options) -> dict:
        deployment = sdk.create_deployment(
            pipelines[function], unique("par"), "endpoint", mode="low_latency", **options
        )
        assert deployment["status"] == "up"
        created.append(deployment["name"])
        return deployment

    yield deploy_
    for name in created:
        sdk.delete_deployment(name)


def post(platform, deployment, **inputs) -> httpx.Response:
    return httpx.post(
        f"{platform.url}/endpoints/{deployment['endpoint_url_path']}",
        json=inputs,
        timeout=60,
        headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"},
    )


def concurrently(platform, deployment, count, **inputs) -> tuple[list[httpx.Response], float]:
    began = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        responses = list(pool.map(lambda _: post(platform, deployment, **inputs), range(count)))
    return responses, time.monotonic() - began


def pod_load(sdk, name, expected, within_s=1.5) -> tuple[int, int]:
    """(running, waiting) of the deployment's pod once it is ``expected`` (pods report every 0.2 s),
    or as it is after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        pod = sdk.get_deployment(name)["pods"][0]
        load = (pod["running_executions"], pod["waiting_executions"])
        if load == expected or time.monotonic() > deadline:
            return load
        time.sleep(0.05)


def most_seen(responses) -> int:
    return max(r.json()["output"]["most"] for r in responses if r.status_code == 200)


@pytest.mark.parametrize("function", ["sleeper", "async_sleeper"])
def test_n_executions_run_at_once_and_the_others_wait(platform, sdk, deploy, function):
    deployment = deploy(function, enable_parallel_executions=True, max_parallel_executions_per_pod=4)
    assert deployment["enable_parallel_executions"] is True and deployment["max_parallel_executions_per_pod"] == 4
    assert deployment["max_queued_executions"] == 1000

    responses, elapsed = concurrently(platform, deployment, 4, seconds=1)
    assert [r.status_code for r in responses] == [200] * 4
    assert 0.95 < elapsed < 1.8, elapsed

    responses, elapsed = concurrently(platform, deployment, 8, seconds=1)
    assert [r.status_code for r in responses] == [200] * 8
    assert 1.95 < elapsed < 3.0, elapsed
    assert most_seen(responses) == 4
    # The id the code reads is its own execution's.
    assert all(r.json()["output"]["execution_id"] == r.json()["execution_id"] for r in responses)


def test_without_parallel_executions_calls_run_one_after_another(platform, deploy):
    deployment = deploy("sleeper")
    assert deployment["enable_parallel_executions"] is False and deployment["max_parallel_executions_per_pod"] == 1
    responses, elapsed = concurrently(platform, deployment, 3, seconds=1)
    assert [r.status_code for r in responses] == [200] * 3
    assert 2.95 < elapsed < 4.5, elapsed
    assert most_seen(responses) == 1


def test_past_the_queue_calls_are_refused_at_once_with_503_and_retry_after(platform, sdk, api, deploy):
    deployment = deploy(
        "sleeper", enable_parallel_executions=True, max_parallel_executions_per_pod=4, max_queued_executions=4
    )
    name = deployment["name"]
    with ThreadPoolExecutor(12) as pool:
        calls = [pool.submit(post, platform, deployment, seconds=2) for _ in range(12)]
        assert pod_load(sdk, name, (4, 4)) == (4, 4)  # waiting is visible per pod while it lasts
        through_the_api = api.post(f"/deployments/{name}/executions", json={"seconds": 0})
        responses = [call.result() for call in calls]

    refused = [r for r in responses if r.status_code == 503]
    assert len(refused) == 4 and sum(r.status_code == 200 for r in responses) == 8
    for response in refused + [through_the_api]:
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert "max_queued_executions" in response.json()["message"]
    assert most_seen(responses) == 4
    time.sleep(1.2)  # records reach SQL in batches
    recorded = [
        e for e in sdk.list_pipeline_executions(deployment["pipeline"]["name"]) if e.get("deployment_name") == name
    ]
    assert len(recorded) == 8  # a refused call leaves no record
    assert pod_load(sdk, name, (0, 0)) == (0, 0)


def test_a_timed_out_thread_keeps_its_slot_until_it_really_ends(platform, sdk, deploy):
    deployment = deploy(
        "sleeper", enable_parallel_executions=True, max_parallel_executions_per_pod=4, execution_timeout_s=2
    )
    name = deployment["name"]
    began = time.monotonic()
    response = post(platform, deployment, seconds=6)
    assert response.status_code == 504 and 1.9 < time.monotonic() - began < 3.0
    body = response.json()
    assert body["name"] == "ExecutionTimedOut" and "execution_timeout_s=2" in body["message"]

    # Three slots are left while the thread sleeps on: 4 calls of 0.5 s take two rounds, not one.
    responses, elapsed = concurrently(platform, deployment, 4, seconds=0.5)
    assert [r.status_code for r in responses] == [200] * 4
    assert most_seen(responses) == 4 and elapsed >= 0.95, elapsed
    assert pod_load(sdk, name, (1, 0)) == (1, 0)
    assert "still runs and holds one of the 4 execution slot(s)" in logs_text(sdk.get_deployment_logs(name))

    execution = sdk.get_pipeline_execution(body["execution_id"])
    assert execution["status"] == "Failed" and "execution_timeout_s=2" in execution["error"]
    deadline = time.monotonic() + 8
    while "ended after" not in logs_text(sdk.get_deployment_logs(name)):
        assert time.monotonic() < deadline, "the timed-out thread's end was not logged"
        time.sleep(0.2)
    responses, elapsed = concurrently(platform, deployment, 4, seconds=0.5)
    assert most_seen(responses) == 4 and elapsed < 0.95, elapsed  # the slot is free again


def test_a_timed_out_coroutine_is_cancelled_and_frees_its_slot_at_once(platform, sdk, deploy):
    deployment = deploy(
        "async_sleeper", enable_parallel_executions=True, max_parallel_executions_per_pod=4, execution_timeout_s=2
    )
    began = time.monotonic()
    response = post(platform, deployment, seconds=30)
    assert response.status_code == 504 and 1.9 < time.monotonic() - began < 3.0
    assert "cancelled" in response.json()["message"]
    responses, elapsed = concurrently(platform, deployment, 4, seconds=1)
    assert [r.status_code for r in responses] == [200] * 4
    assert elapsed < 1.8 and most_seen(responses) == 4
    execution = sdk.get_pipeline_execution(response.json()["execution_id"])
    assert execution["status"] == "Failed" and "execution_timeout_s=2" in execution["error"]


def test_each_execution_keeps_its_own_logs_from_its_threads_too(platform, sdk, deploy):
    deployment = deploy("sleeper", enable_parallel_executions=True, max_parallel_executions_per_pod=8)
    responses, _ = concurrently(platform, deployment, 8, seconds=0, talk=True)
    assert [r.status_code for r in responses] == [200] * 8
    time.sleep(1.2)  # records reach SQL in batches
    for response in responses:
        me = response.json()["execution_id"]
        lines = [line["message"] for line in sdk.get_pipeline_execution_logs(me)]
        talk = [line for line in lines if line.startswith("talk ")]
        assert sorted(talk) == sorted(
            [f"talk {me} main {i}" for i in range(5)]
            + [f"talk {me} thread {i} sees {me}" for i in range(5)]
            + [f"talk {me} pool sees {me}"]
        ), lines
    deployment_logs = logs_text(sdk.get_deployment_logs(deployment["name"]))
    assert "background thread: belongs to no execution" in deployment_logs
    assert "talk " not in deployment_logs


def test_an_elastic_execution_past_its_timeout_has_its_worker_stopped(platform, sdk, pipelines):
    name = unique("elastic-timeout")
    deployment = sdk.create_deployment(pipelines["sleeper"], name, "endpoint", mode="elastic", execution_timeout_s=2)
    try:
        began = time.monotonic()
        response = post(platform, deployment, seconds=30)
        assert response.status_code == 504 and time.monotonic() - began < 10
        body = response.json()
        assert body["name"] == "ExecutionTimedOut" and "execution_timeout_s=2" in body["message"]
        execution = sdk.get_pipeline_execution(body["execution_id"])
        assert execution["status"] == "Failed" and "worker process was stopped" in execution["error"]
        assert post(platform, deployment, seconds=0).status_code == 200  # the next call is not affected
    finally:
        sdk.delete_deployment(name)
