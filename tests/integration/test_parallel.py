"""Parallel executions in a warm replica: threads for `def`, coroutines for `async def`, an exact
limit (timed-out threads included), a bounded queue, timeouts and per-execution logs; and the
timeout of an elastic execution, whose worker process can be stopped."""

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import pytest

from rayline import Input, Output
from tests.integration.conftest import folder_pipeline, unique, write_folder
from tests.integration.test_deployments import logs_text
from tests.support import wait_until

MODULE = {
    "main.py": """
        import asyncio
        import threading
        import time
        from concurrent.futures import ThreadPoolExecutor

        import rayline

        # For each call running now (by execution id), the most calls it has seen running at once,
        # itself included, as their ids: what ran together is observed, not inferred from times.
        LOCK = threading.Lock()
        RUNNING = {}
        POOL = ThreadPoolExecutor(2)  # shared by every execution

        def _enter():
            me = rayline.current_execution_id()
            with LOCK:
                RUNNING[me] = ()
                now = tuple(RUNNING)
                for other, seen in RUNNING.items():
                    if len(now) > len(seen):
                        RUNNING[other] = now
            return me

        def _leave(me):
            with LOCK:
                return {"together": ",".join(sorted(RUNNING.pop(me))), "execution_id": me}

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
            me = _enter()
            try:
                if talk:
                    _talk("talk")
                time.sleep(seconds)
            finally:
                result = _leave(me)
            return result

        async def async_sleeper(seconds):
            me = _enter()
            try:
                await asyncio.sleep(seconds)
            finally:
                result = _leave(me)  # also when cancelled: it runs no more
            return result

        def _background():
            time.sleep(0.5)
            print("background thread: belongs to no execution")

        threading.Thread(target=_background, daemon=True).start()
    """,
}
INPUTS = [Input("seconds", "number"), Input("talk", "boolean", is_required=False)]
OUTPUTS = [Output("together", "string"), Output("execution_id", "string")]


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


def concurrently(platform, deployment, count, **inputs) -> list[httpx.Response]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: post(platform, deployment, **inputs), range(count)))


def load(sdk, name) -> tuple[int, int]:
    """(running, waiting) of the deployment's pod, as it last reported (pods report every 0.2 s)."""
    pod = sdk.get_deployment(name)["pods"][0]
    return pod["running_executions"], pod["waiting_executions"]


def wait_for_load(sdk, name, expected, timeout_s) -> None:
    seen: list[tuple[int, int]] = []

    def reached() -> bool:
        seen.append(load(sdk, name))
        return seen[-1] == expected

    wait_until(reached, timeout_s, lambda: f"the pod of {name} at (running, waiting) = {expected}; saw {seen[-1]}")


def together(responses) -> list[set[str]]:
    """For each answered call, the executions it saw running at once at the most (itself included)."""
    return [set(r.json()["output"]["together"].split(",")) for r in responses if r.status_code == 200]


def most_at_once(responses) -> int:
    return max(len(seen) for seen in together(responses))


def all_at_once(responses) -> bool:
    """Whether every one of these calls was running at the same moment."""
    ids = {r.json()["execution_id"] for r in responses}
    return any(ids <= seen for seen in together(responses))


def talk_lines(sdk, execution_id, count) -> list[str] | None:
    """The execution's lines starting with "talk ", once it has ``count`` of them (else None)."""
    lines = [line["message"] for line in sdk.get_pipeline_execution_logs(execution_id)]
    talk = [line for line in lines if line.startswith("talk ")]
    return talk if len(talk) >= count else None


@pytest.mark.parametrize("function", ["sleeper", "async_sleeper"])
def test_n_executions_run_at_once_and_the_others_wait(platform, sdk, deploy, function):
    deployment = deploy(function, enable_parallel_executions=True, max_parallel_executions_per_pod=4)
    assert deployment["enable_parallel_executions"] is True and deployment["max_parallel_executions_per_pod"] == 4
    assert deployment["max_queued_executions"] == 1000

    responses = concurrently(platform, deployment, 4, seconds=1)
    assert [r.status_code for r in responses] == [200] * 4
    assert all_at_once(responses)

    # Twice the limit: every call is answered, never more than 4 running at once (so 4 waited).
    responses = concurrently(platform, deployment, 8, seconds=1)
    assert [r.status_code for r in responses] == [200] * 8
    assert most_at_once(responses) == 4
    # The id the code reads is its own execution's.
    assert all(r.json()["output"]["execution_id"] == r.json()["execution_id"] for r in responses)


def test_without_parallel_executions_calls_run_one_after_another(platform, deploy):
    deployment = deploy("sleeper")
    assert deployment["enable_parallel_executions"] is False and deployment["max_parallel_executions_per_pod"] == 1
    responses = concurrently(platform, deployment, 3, seconds=1)
    assert [r.status_code for r in responses] == [200] * 3
    assert most_at_once(responses) == 1


def test_past_the_queue_calls_are_refused_at_once_with_503_and_retry_after(platform, sdk, api, deploy):
    deployment = deploy(
        "sleeper", enable_parallel_executions=True, max_parallel_executions_per_pod=4, max_queued_executions=4
    )
    name = deployment["name"]
    with ThreadPoolExecutor(12) as pool:
        calls = [pool.submit(post, platform, deployment, seconds=2) for _ in range(12)]
        # Waiting is visible per pod while it lasts: until the first four end, 2 s after they began.
        wait_for_load(sdk, name, (4, 4), timeout_s=2)
        through_the_api = api.post(f"/deployments/{name}/executions", json={"seconds": 0})
        responses = [call.result() for call in calls]

    refused = [r for r in responses if r.status_code == 503]
    assert len(refused) == 4 and sum(r.status_code == 200 for r in responses) == 8
    for response in refused + [through_the_api]:
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert "max_queued_executions" in response.json()["message"]
    assert most_at_once(responses) == 4

    def recorded():
        executions = sdk.list_pipeline_executions(deployment["pipeline"]["name"])
        return [e for e in executions if e.get("deployment_name") == name]

    # Records reach SQL in batches (a read has the pod commit what it answered first).
    wait_until(lambda: len(recorded()) >= 8, 10, "the 8 answered calls recorded")
    assert len(recorded()) == 8  # a refused call leaves no record
    wait_for_load(sdk, name, (0, 0), timeout_s=5)


def test_a_timed_out_thread_keeps_its_slot_until_it_really_ends(platform, sdk, deploy):
    deployment = deploy(
        "sleeper", enable_parallel_executions=True, max_parallel_executions_per_pod=4, execution_timeout_s=2
    )
    name = deployment["name"]
    began = time.monotonic()
    response = post(platform, deployment, seconds=6)
    # Not before its timeout, and before the function would have ended (the precise delay past
    # the timeout is a benchmark: benchmarks/parallel_throughput.py, "timeout_answer").
    assert response.status_code == 504 and 1.9 < time.monotonic() - began < 6
    body = response.json()
    assert body["name"] == "ExecutionTimedOut" and "execution_timeout_s=2" in body["message"]
    timed_out = body["execution_id"]

    # Three slots are left while the thread sleeps on: 4 calls never all run at once, and the
    # timed-out thread ran beside them, still counted (4 at once at the most, never 5).
    responses = concurrently(platform, deployment, 4, seconds=0.5)
    assert [r.status_code for r in responses] == [200] * 4
    assert most_at_once(responses) == 4 and not all_at_once(responses)
    assert all(timed_out in seen for seen in together(responses))
    wait_for_load(sdk, name, (1, 0), timeout_s=2)
    assert "still runs and holds one of the 4 execution slot(s)" in logs_text(sdk.get_deployment_logs(name))

    execution = sdk.get_pipeline_execution(timed_out)
    assert execution["status"] == "Failed" and "execution_timeout_s=2" in execution["error"]
    wait_until(
        lambda: "ended after" in logs_text(sdk.get_deployment_logs(name)), 8, "the timed-out thread's end logged"
    )
    responses = concurrently(platform, deployment, 4, seconds=1)
    assert [r.status_code for r in responses] == [200] * 4
    assert all_at_once(responses) and most_at_once(responses) == 4  # the slot is free again


def test_a_timed_out_coroutine_is_cancelled_and_frees_its_slot_at_once(platform, sdk, deploy):
    deployment = deploy(
        "async_sleeper", enable_parallel_executions=True, max_parallel_executions_per_pod=4, execution_timeout_s=2
    )
    began = time.monotonic()
    response = post(platform, deployment, seconds=30)
    assert response.status_code == 504 and 1.9 < time.monotonic() - began < 30
    assert "cancelled" in response.json()["message"]
    # Right after: 4 calls all run at once (its slot is free), and only they (it runs no more).
    responses = concurrently(platform, deployment, 4, seconds=1)
    assert [r.status_code for r in responses] == [200] * 4
    assert all_at_once(responses) and most_at_once(responses) == 4
    execution = sdk.get_pipeline_execution(response.json()["execution_id"])
    assert execution["status"] == "Failed" and "execution_timeout_s=2" in execution["error"]


def test_each_execution_keeps_its_own_logs_from_its_threads_too(platform, sdk, deploy):
    deployment = deploy("sleeper", enable_parallel_executions=True, max_parallel_executions_per_pod=8)
    responses = concurrently(platform, deployment, 8, seconds=0, talk=True)
    assert [r.status_code for r in responses] == [200] * 8
    for response in responses:
        me = response.json()["execution_id"]
        expected = sorted(
            [f"talk {me} main {i}" for i in range(5)]
            + [f"talk {me} thread {i} sees {me}" for i in range(5)]
            + [f"talk {me} pool sees {me}"]
        )
        # Records reach SQL in batches: wait for as many talk lines as expected, then compare.
        talk = wait_until(partial(talk_lines, sdk, me, len(expected)), 10, f"the 11 talk lines of {me} in its logs")
        assert sorted(talk) == expected, talk
    name = deployment["name"]
    background = "background thread: belongs to no execution"  # printed 0.5 s after the import
    wait_until(lambda: background in logs_text(sdk.get_deployment_logs(name)), 10, f"{background!r} logged")
    assert "talk " not in logs_text(sdk.get_deployment_logs(name))


def test_an_elastic_execution_past_its_timeout_has_its_worker_stopped(platform, sdk, pipelines):
    name = unique("elastic-timeout")
    deployment = sdk.create_deployment(pipelines["sleeper"], name, "endpoint", mode="elastic", execution_timeout_s=2)
    try:
        began = time.monotonic()
        response = post(platform, deployment, seconds=30)
        assert response.status_code == 504 and time.monotonic() - began < 30  # before it would have ended
        body = response.json()
        assert body["name"] == "ExecutionTimedOut" and "execution_timeout_s=2" in body["message"]
        execution = sdk.get_pipeline_execution(body["execution_id"])
        assert execution["status"] == "Failed" and "every process it started, were stopped" in execution["error"]
        assert post(platform, deployment, seconds=0).status_code == 200  # the next call is not affected
    finally:
        sdk.delete_deployment(name)


LOOPS = {
    "main.py": """
        import threading

        def _separate_user_loop():
            return any("_run_user_code_event_loop" in thread.name for thread in threading.enumerate())

        def plain(x):
            return {"separate_user_loop": _separate_user_loop()}

        async def coroutine(x):
            return {"separate_user_loop": _separate_user_loop()}
    """,
}


@pytest.mark.parametrize(("function", "separate_loop"), [("plain", False), ("coroutine", True)])
def test_a_plain_defs_pod_answers_on_serves_main_loop_a_coroutines_keeps_one_for_user_code(
    platform, sdk, tmp_path, function, separate_loop
):
    outputs = [Output("separate_user_loop", "boolean")]
    with folder_pipeline(platform, tmp_path, "loops", LOOPS, function, [Input("x", "number")], outputs) as name:
        deployment = sdk.create_deployment(name, unique("loops"), "endpoint", mode="low_latency")
        assert deployment["status"] == "up"
        answer = post(platform, deployment, x=1)
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"] == {"separate_user_loop": separate_loop}
