"""Nothing answered is lost, and nothing is left running, when a pod or the platform dies under load.

Callers hit a low_latency deployment (parallel executions on) from 8 threads while its pod is
SIGKILLed twice, then while the whole platform is stopped and started again on the same
``RAYLINE_HOME``. Every call answered 200 has its ``Succeeded`` record; what was running when a
process died ends ``Error``; the deployment is ``up`` again by itself; no execution stays
``Pending`` or ``Running``. Elastic executions running when the platform stops end ``Error`` with
a message that says so.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from rayline import Input, Output
from tests.integration.conftest import unique, write_folder

WORK = {
    "main.py": """
    import os
    import time

    def work(x, seconds=0.02):
        time.sleep(seconds)
        return {"y": x * 2, "pid": os.getpid()}
"""
}
CALLERS = 8


class Load:
    """Callers that POST until stopped, remembering each answer (or that there was none)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.succeeded: list[str] = []
        self.other: list[int | str] = []
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._call, args=(i,), daemon=True) for i in range(CALLERS)]

    def _call(self, worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            x = worker * 100_000
            while not self._stop.is_set():
                x += 1
                try:
                    response = client.post(
                        self.url, json={"x": x}, headers={"Authorization": f"EndpointToken {self.token}"}
                    )
                except httpx.HTTPError as error:  # the pod or the platform died with the call
                    self.other.append(type(error).__name__)
                    time.sleep(0.05)
                    continue
                if response.status_code == 200:
                    body = response.json()
                    assert body["output"]["y"] == 2 * x
                    self.succeeded.append(body["execution_id"])
                    self.pids.add(body["output"]["pid"])
                else:
                    self.other.append(response.status_code)
                    time.sleep(0.05)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def wait_for(self, count: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.succeeded) < count:
            assert time.monotonic() < deadline, f"only {len(self.succeeded)} calls succeeded"
            time.sleep(0.1)


def _wait_up(sdk, name: str, timeout_s: float = 120) -> float:
    began = time.monotonic()
    while sdk.get_deployment(name)["status"] != "up":
        assert time.monotonic() - began < timeout_s, f"{name} not up again"
        time.sleep(0.5)
    return time.monotonic() - began


def _settled(sdk, pipeline: str, timeout_s: float = 60) -> list[dict]:
    """The pipeline's executions once none is Pending or Running any more."""
    deadline = time.monotonic() + timeout_s
    while True:
        executions = sdk.list_pipeline_executions(pipeline)
        if all(e["status"] not in ("Pending", "Running") for e in executions) or time.monotonic() > deadline:
            return executions
        time.sleep(0.5)


def _create_work_pipeline(sdk, name: str, tmp_path) -> None:
    sdk.create_pipeline(
        name,
        "main.py",
        "work",
        container_config={"local_folder": str(write_folder(tmp_path / name, WORK))},
        inputs=[Input("x", "number"), Input("seconds", "number", is_required=False)],
        outputs=[Output("y", "number"), Output("pid", "number")],
    )


@pytest.fixture
def warm(platform, sdk, tmp_path):
    pipeline = unique("work")
    _create_work_pipeline(sdk, pipeline, tmp_path)
    name = unique("work-ll")
    deployment = sdk.create_deployment(
        pipeline,
        name,
        "endpoint",
        mode="low_latency",
        enable_parallel_executions=True,
        max_parallel_executions_per_pod=4,
    )
    yield pipeline, deployment
    sdk.delete_pipeline(pipeline, force_deployments_deletion=True)


def _check(sdk, pipeline: str, load: Load) -> list[dict]:
    executions = {e["execution_id"]: e for e in _settled(sdk, pipeline)}
    missing = [i for i in load.succeeded if executions.get(i, {}).get("status") != "Succeeded"]
    assert missing == [], f"{len(missing)} answered calls without their Succeeded record, e.g. {missing[:3]}"
    assert [e for e in executions.values() if e["status"] in ("Pending", "Running")] == []
    return list(executions.values())


def test_a_pod_killed_twice_under_load_loses_no_answered_call(platform, sdk, warm):
    pipeline, deployment = warm
    url = f"{platform.url}/endpoints/{deployment['endpoint_url_path']}"
    with Load(url, deployment["endpoint_token"]) as load:
        for _ in range(2):
            load.wait_for(len(load.succeeded) + 100)
            pid = max(load.pids)
            load.pids.clear()
            os.kill(pid, signal.SIGKILL)
            time.sleep(1)
            _wait_up(sdk, deployment["name"])
            load.wait_for(len(load.succeeded) + 50)  # served again, by a new pod
    executions = _check(sdk, pipeline, load)
    errors = [e for e in executions if e["status"] == "Error"]
    assert all("stopped" in sdk.get_pipeline_execution(e["execution_id"])["error"] for e in errors)
    assert {e["status"] for e in executions} <= {"Succeeded", "Error"}
    assert len(load.succeeded) >= 300


def test_the_platform_restarted_under_load_loses_no_answered_call(platform, sdk, warm, tmp_path):
    pipeline, deployment = warm
    slow = unique("slow")  # an elastic execution running when the platform stops
    _create_work_pipeline(sdk, slow, tmp_path)
    url = f"{platform.url}/endpoints/{deployment['endpoint_url_path']}"
    with Load(url, deployment["endpoint_token"]) as load:
        load.wait_for(100)
        running = sdk.run_pipeline(slow, {"x": 1, "seconds": 60}, wait_for_completion=False)["execution_id"]
        deadline = time.monotonic() + 60
        while sdk.get_pipeline_execution(running)["status"] != "Running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        answered_before = len(load.succeeded)
        platform.restart()  # SIGTERM (as Ctrl-C), nothing left behind, then `rayline up` on the same home
        with platform.sdk() as after:
            _wait_up(after, deployment["name"])
        load.wait_for(answered_before + 100)  # calls succeed after the restart
    with platform.sdk() as after:
        _check(after, pipeline, load)
        ended = after.get_pipeline_execution(running)
        assert ended["status"] == "Error" and "platform stopped" in ended["error"]
        after.delete_pipeline(slow)
