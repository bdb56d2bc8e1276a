"""The control plane's routes over the fakes of its two runtime seams (tests/fakes.py): the real
composition root, services, store (SQLite in tmp_path) and FastAPI application, called through a
TestClient; elastic executions run in-process by ``FakeRunner``, warm pods answer through
``FakeServeRuntime``. No Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rayline.domain.deployments import TIMED_OUT, ReplicaConfig
from rayline.domain.outcomes import Busy, Ended, Refused
from rayline.domain.pod_scaling import PodScaling
from rayline.domain.statuses import ExecutionStatus
from tests.fakes import FakePlatform, platform_factory

ROOT = Path(__file__).resolve().parents[2]
SOURCE = {"main.py": "def handler(x):\n    return {'y': x * 2}\n"}
X_TO_Y = {"inputs": [{"name": "x", "data_type": "number"}], "outputs": [{"name": "y", "data_type": "number"}]}


def doubled(x):
    print(f"doubling {x}")
    return {"y": x * 2}


@pytest.fixture
def make_platform(tmp_path, monkeypatch):
    yield from platform_factory(tmp_path, monkeypatch)


@pytest.fixture
def platform(make_platform) -> FakePlatform:
    return make_platform(functions={"handler": doubled})


def with_pipeline(platform: FakePlatform, name: str = "double") -> str:
    created = platform.create_pipeline(name, SOURCE, **X_TO_Y)
    assert created.status_code == 201, created.text
    return name


def deploy(platform: FakePlatform, name: str, pipeline: str = "double", **options) -> dict:
    created = platform.client.post("/api/v1/endpoints", json={"pipeline_name": pipeline, "name": name, **options})
    assert created.status_code == 201, created.text
    return created.json()


def call(platform: FakePlatform, deployment: dict, inputs: dict, token: str | None = None, **kwargs):
    token = deployment["endpoint_token"] if token is None else token
    return platform.client.post(
        f"/endpoints/{deployment['endpoint_url_path']}",
        json=inputs,
        headers={"Authorization": f"EndpointToken {token}"},
        **kwargs,
    )


# --- the API's door ------------------------------------------------------------------------------


def test_health_answers_without_a_token(platform):
    anonymous = TestClient(platform.client.app)
    assert anonymous.get("/api/v1/health").json() == {"status": "ok"}
    # A monitor's HEAD, without a token too (rayline.api.app lets it through the token gate).
    assert anonymous.head("/api/v1/health").status_code == 200


def test_every_other_api_route_needs_the_sdk_token(platform):
    anonymous = TestClient(platform.client.app)
    missing = anonymous.get("/api/v1/pipelines")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json()["name"] == "Unauthorized" and "Missing SDK token" in missing.json()["message"]
    wrong = anonymous.get("/api/v1/pipelines", headers={"Authorization": "Bearer " + "w" * 40})
    assert wrong.status_code == 401 and "Invalid SDK token" in wrong.json()["message"]
    # A path no route serves is refused the same: the API cannot be probed without the token.
    assert anonymous.get("/api/v1/no-such-route").status_code == 401
    assert platform.client.get("/api/v1/pipelines").status_code == 200


# --- pipelines -----------------------------------------------------------------------------------


def test_a_pipeline_uploaded_as_the_sdk_does_is_listed_and_read_back(platform):
    created = platform.create_pipeline(
        "double", SOURCE, description="doubles x", **{"container_config[language]": "python"}, **X_TO_Y
    )
    assert created.status_code == 201, created.text
    parameters = created.json()["parameters"]
    assert parameters["pipeline_name"] == "double" and parameters["description"] == "doubles x"
    assert parameters["inputs"] == [{"name": "x", "data_type": "number", "is_required": True}]
    assert parameters["outputs"] == [{"name": "y", "data_type": "number"}]
    assert parameters["container_config"] == {"language": "python"}
    assert created.json()["creation_info"]["status"] == "ready"

    listed = platform.client.get("/api/v1/pipelines").json()
    assert [(p["pipeline_name"], p["status"]) for p in listed] == [("double", "ready")]
    assert platform.client.get("/api/v1/pipelines/double").json()["parameters"] == parameters

    again = platform.create_pipeline("double", SOURCE, **X_TO_Y)
    assert again.status_code == 409 and again.json()["name"] == "AlreadyExists"
    missing = platform.client.get("/api/v1/pipelines/nope")
    assert missing.status_code == 404 and "'nope' does not exist" in missing.json()["message"]


def test_a_pipeline_whose_file_lacks_the_function_is_refused_naming_it(platform):
    refused = platform.create_pipeline("broken", {"main.py": "def other():\n    pass\n"}, **X_TO_Y)
    assert refused.status_code == 400
    assert refused.json()["message"] == "function_name 'handler' is not defined at the top level of 'main.py'."
    assert platform.client.get("/api/v1/pipelines").json() == []


def test_run_pipeline_runs_it_and_its_execution_is_listed_with_its_outputs(platform):
    with_pipeline(platform)
    started = platform.client.post("/api/v1/pipelines/double/run", json={"json_inputs": {"x": 4}})
    assert started.status_code == 200 and started.json() == {"execution_id": "double-1"}
    (job,) = platform.runner.jobs
    assert (job.function_path, job.function_name, job.inputs) == ("main.py", "handler", {"x": 4})
    assert platform.runner.submissions[0].package_uri.startswith("file://")
    assert job.log_credential  # issued by the pod gateway, as for a real worker

    outputs = platform.client.get("/api/v1/executions/double-1/outputs").json()["outputs"]
    assert [(o["pipeline_output_name"], o["value"]) for o in outputs] == [("y", 8)]
    assert platform.client.get("/api/v1/executions/double-1/outputs/y").json() == 8
    listed = platform.client.get("/api/v1/pipelines/double/executions").json()
    assert [(e["execution_id"], e["status"], e["deployment_name"]) for e in listed] == [("double-1", "Succeeded", None)]
    assert platform.client.get("/api/v1/pipelines/double/executions/latest").json()["execution_id"] == "double-1"


# --- elastic endpoints ---------------------------------------------------------------------------


def test_an_elastic_endpoint_answers_with_the_function_output_and_records_the_execution(platform):
    with_pipeline(platform)
    deployment = deploy(platform, "dbl", endpoint_url_path="dbl-path")
    assert (deployment["mode"], deployment["status"], deployment["endpoint_url_path"]) == ("elastic", "up", "dbl-path")

    answered = call(platform, deployment, {"x": 3})
    assert answered.status_code == 200
    assert answered.json() == {"execution_id": "dbl-1", "output": {"y": 6}}
    assert call(platform, deployment, {"x": 5}).json() == {"execution_id": "dbl-2", "output": {"y": 10}}

    execution = platform.client.get("/api/v1/executions/dbl-1").json()
    assert (execution["status"], execution["pipeline_name"], execution["deployment_name"]) == (
        "Succeeded",
        "double",
        "dbl",
    )
    assert execution["start_date"] and execution["end_date"] and execution["error"] is None
    assert [(i["pipeline_input_name"], i["mapping_type"], i["value"]) for i in execution["inputs"]] == [
        ("x", "endpoint", 3)
    ]
    assert [(o["pipeline_output_name"], o["value"]) for o in execution["outputs"]] == [("y", 6)]
    (lines,) = platform.client.post("/api/v1/executions/dbl-1/logs", json={}).json()
    assert [(line["stream"], line["message"]) for line in lines] == [("stdout", "doubling 3")]
    assert platform.client.get("/api/v1/deployments/dbl/executions/latest").json()["execution_id"] == "dbl-2"
    assert platform.serve.deploys == []  # an elastic deployment holds nothing in Serve


def test_an_endpoint_needs_its_own_token(platform):
    with_pipeline(platform)
    deployment = deploy(platform, "dbl")
    wrong = call(platform, deployment, {"x": 1}, token="not-the-token")
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "EndpointToken"
    # The SDK token is no endpoint token, and a path where no deployment is gets the same 401.
    sdk_token = platform.client.post("/endpoints/dbl", json={"x": 1})
    assert sdk_token.status_code == 401 and sdk_token.json() == wrong.json()
    assert call(platform, {**deployment, "endpoint_url_path": "nowhere"}, {"x": 1}).json() == wrong.json()
    assert platform.runner.jobs == []


def test_bad_inputs_are_refused_before_anything_runs(platform):
    with_pipeline(platform)
    deployment = deploy(platform, "dbl")
    bad = call(platform, deployment, {"x": "two"})
    assert bad.status_code == 400 and bad.json()["message"] == "Input 'x': expected a number, got str 'two'."
    unknown = call(platform, deployment, {"x": 1, "z": 2})
    assert unknown.status_code == 400 and "Unknown input(s) 'z'" in unknown.json()["message"]
    assert platform.runner.jobs == []
    assert platform.client.get("/api/v1/deployments/dbl/executions/latest").json() == {}


def test_a_failing_function_is_a_500_naming_the_execution_whose_logs_hold_the_traceback(platform):
    def unlucky(x):
        raise ValueError(f"unlucky {x}")

    platform.runner.functions["handler"] = unlucky
    with_pipeline(platform)
    failed = call(platform, deploy(platform, "dbl"), {"x": 13})
    assert failed.status_code == 500
    assert failed.json() == {
        "message": "ValueError: unlucky 13. The traceback is in the execution's logs.",
        "name": "ExecutionFailed",
        "execution_id": "dbl-1",
    }
    execution = platform.client.get("/api/v1/executions/dbl-1").json()
    assert execution["status"] == "Failed" and execution["outputs"] == []
    (lines,) = platform.client.post("/api/v1/executions/dbl-1/logs", json={}).json()
    assert (
        lines[0]["message"] == "Traceback (most recent call last):" and lines[-1]["message"] == "ValueError: unlucky 13"
    )
    assert {line["stream"] for line in lines} == {"stderr"}
    outputs = platform.client.get("/api/v1/executions/dbl-1/outputs")
    assert outputs.status_code == 409 and outputs.json()["name"] == "ExecutionFailed"


def test_an_elastic_deployment_refuses_calls_past_max_queued_executions(make_platform):
    release = threading.Event()

    def held(x):
        assert release.wait(5)
        return {"y": x}

    platform = make_platform(functions={"handler": held}, threaded=True)
    with_pipeline(platform)
    deploy(platform, "dbl", max_queued_executions=1)
    try:
        first = platform.client.post("/api/v1/deployments/dbl/executions", json={"x": 1})
        assert first.json() == {"execution_id": "dbl-1"}  # started, not waited for
        busy = platform.client.post("/api/v1/deployments/dbl/executions", json={"x": 2})
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert "max_queued_executions" in busy.json()["message"] and len(platform.runner.jobs) == 1
    finally:
        release.set()
    ended = platform.client.get("/api/v1/executions/dbl-1/outputs", params={"wait_for_completion": "true"})
    assert [o["value"] for o in ended.json()["outputs"]] == [1]
    assert platform.client.post("/api/v1/deployments/dbl/executions", json={"x": 3}).status_code == 200


def test_an_elastic_call_still_running_is_redirected_to_its_result(make_platform):
    release = threading.Event()

    def held(x):
        assert release.wait(5)
        return {"y": x * 2}

    platform = make_platform(functions={"handler": held}, threaded=True, endpoint_wait_s=0.05)
    with_pipeline(platform)
    deployment = deploy(platform, "dbl")
    try:
        running = call(platform, deployment, {"x": 21}, follow_redirects=False)
        assert running.status_code == 303 and running.json() == {"execution_id": "dbl-1"}
        assert running.headers["Location"] == "/endpoints/v1/dbl/executions/dbl-1"
    finally:
        release.set()
    result = platform.client.get(
        running.headers["Location"], headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"}
    )
    assert result.status_code == 200 and result.json() == {"execution_id": "dbl-1", "outputs": {"y": {"value": 42}}}


def test_an_elastic_execution_past_its_timeout_is_a_504(make_platform):
    release = threading.Event()
    platform = make_platform(functions={"handler": lambda x: {"y": x} if release.wait(5) else {}}, threaded=True)
    with_pipeline(platform)
    try:
        timed_out = call(platform, deploy(platform, "dbl", execution_timeout_s=0.05), {"x": 1})
    finally:
        release.set()
    assert timed_out.status_code == 504 and timed_out.json()["name"] == "ExecutionTimedOut"
    assert timed_out.json()["message"] == f"{TIMED_OUT}0.05 s; its worker process was stopped."
    assert platform.client.get("/api/v1/executions/dbl-1").json()["status"] == "Failed"


# --- low-latency deployments ---------------------------------------------------------------------


def test_a_low_latency_deployment_is_deployed_to_serve_with_its_replica_config(platform):
    with_pipeline(platform)
    created = deploy(
        platform,
        "warm",
        mode="low_latency",
        endpoint_url_path="warm-path",
        enable_parallel_executions=True,
        max_parallel_executions_per_pod=3,
        max_queued_executions=5,
        execution_timeout_s=2.5,
        ram_request="512MiB",
    )
    assert created["status"] == "creation_pending"  # until Serve says it runs
    (deployed,) = platform.serve.deploys
    config = deployed.config
    assert isinstance(config, ReplicaConfig)
    assert (config.deployment_name, config.pipeline_name, config.function_path, config.function_name) == (
        "warm",
        "double",
        "main.py",
        "handler",
    )
    assert (config.route_prefix, config.version) == ("/endpoints/warm-path", 1)
    assert (config.max_parallel_executions, config.max_queued_executions, config.execution_timeout_s) == (3, 5, 2.5)
    assert [i["endpoint_input_name"] for i in config.inputs_mapping] == ["x"]
    assert config.outputs == [{"name": "y", "data_type": "number", "description": None}]
    assert config.credential and config.journal_dir.endswith("journal/warm")
    assert (deployed.ram_request, deployed.gpu_request, deployed.requirements) == ("512MiB", None, [])
    assert deployed.package_uri == platform.context.pipelines.get("double").package_uri

    assert platform.client.get("/api/v1/deployments/warm").json()["status"] == "up"  # Serve: RUNNING
    deleted = platform.client.delete("/api/v1/deployments/warm")
    assert deleted.json() == {"name": "warm", "execution_rule": "endpoint"} and platform.serve.deleted == ["warm"]


def test_pod_settings_go_to_serve_and_an_update_of_them_keeps_the_pods_version(platform):
    with_pipeline(platform)
    created = deploy(platform, "warm", mode="low_latency", min_pods=0, max_pods=3, standby_after_s=30)
    assert (created["min_pods"], created["max_pods"], created["standby_after_s"]) == (0, 3, 30)
    assert platform.serve.deploys[-1].scaling == PodScaling(0, 3, 60.0, 30.0)

    updated = platform.client.patch("/api/v1/deployments/warm", json={"max_pods": 5, "scale_down_after_s": 10})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["max_pods"], updated.json()["version"]["number"]) == (5, 1)
    again = platform.serve.deploys[-1]
    assert again.scaling == PodScaling(0, 5, 10.0, 30.0) and again.config.version == 1  # no reload
    logs = platform.context.deployments.logs("warm", None, None, None)
    assert any(line.message.startswith("Pod settings changed: 0 to 5 pods") for line in logs)

    refused = platform.client.patch("/api/v1/deployments/warm", json={"min_pods": 6})
    assert refused.status_code == 400 and "max_pods (5) must be at least min_pods (6)" in refused.json()["message"]
    assert platform.client.get("/api/v1/deployments/warm").json()["min_pods"] == 0  # unchanged
    # Valid pod settings beside a refused mapping: nothing of the update is kept.
    bad_mapping = [{"pipeline_input_name": "x", "endpoint_input_name": "z"}]
    refused = platform.client.patch("/api/v1/deployments/warm", json={"max_pods": 4, "inputs_mapping": bad_mapping})
    assert refused.status_code == 400, refused.text
    assert platform.client.get("/api/v1/deployments/warm").json()["max_pods"] == 5
    assert len(platform.serve.deploys) == 2


def test_pod_settings_on_an_elastic_deployment_are_a_400_naming_them(platform):
    with_pipeline(platform)
    response = platform.client.post(
        "/api/v1/endpoints", json={"pipeline_name": "double", "name": "cold", "min_pods": 0}
    )
    assert response.status_code == 400 and response.json()["message"].startswith("min_pods: pod settings only go")
    assert platform.client.get("/api/v1/deployments/cold").status_code == 404


def test_a_low_latency_call_with_the_sdk_token_returns_the_pods_execution_id(platform):
    with_pipeline(platform)
    deploy(platform, "warm", mode="low_latency")
    triggered = platform.client.post("/api/v1/deployments/warm/executions", json={"x": 2})
    assert triggered.status_code == 200 and triggered.json() == {"execution_id": "warm-1"}
    assert platform.serve.runs == [("warm", {"x": 2})] and platform.runner.jobs == []


def test_a_low_latency_endpoint_reached_through_the_control_plane_answers_the_pods_outcome(platform):
    with_pipeline(platform)
    deployment = deploy(platform, "warm", mode="low_latency")
    answered = call(platform, deployment, {"x": 7})
    assert answered.status_code == 200 and answered.json() == {"execution_id": "warm-1", "output": {"x": 7}}

    platform.serve.answer = lambda name, given: Ended(
        f"{name}-9", ExecutionStatus.FAILED, error="The execution exceeded execution_timeout_s=1 s.", timed_out=True
    )
    timed_out = call(platform, deployment, {"x": 7})
    assert timed_out.status_code == 504 and timed_out.json()["execution_id"] == "warm-9"


def test_a_pods_refusal_is_a_400_with_its_message(platform):
    with_pipeline(platform)
    deploy(platform, "warm", mode="low_latency")
    platform.serve.answer = lambda name, given: Refused("Input 'x' (number) is required; give it a value.")
    refused = platform.client.post("/api/v1/deployments/warm/executions", json={})
    assert refused.status_code == 400
    assert refused.json() == {"message": "Input 'x' (number) is required; give it a value.", "name": "InvalidInput"}


def test_a_busy_pod_is_a_503_with_retry_after(platform):
    with_pipeline(platform)
    deployment = deploy(platform, "warm", mode="low_latency")
    platform.serve.answer = lambda name, given: Busy("Deployment 'warm' is busy.", retry_after_s=7)
    for busy in (
        platform.client.post("/api/v1/deployments/warm/executions", json={"x": 1}),
        call(platform, deployment, {"x": 1}),
    ):
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "7"
        assert busy.json() == {"message": "Deployment 'warm' is busy.", "name": "Unavailable"}


@pytest.mark.parametrize(
    ("serve_status", "status", "hint"),
    [("DEPLOYING", "creation_pending", "starting"), ("DEPLOY_FAILED", "creation_failed", "get_deployment_logs")],
)
def test_a_pod_that_does_not_serve_yet_is_a_503_saying_why(platform, serve_status, status, hint):
    with_pipeline(platform)
    deployment = deploy(platform, "warm", mode="low_latency")
    platform.serve.status["warm"] = serve_status
    assert platform.client.get("/api/v1/deployments/warm").json()["status"] == status
    refused = call(platform, deployment, {"x": 1})
    assert refused.status_code == 503 and f"is {status}" in refused.json()["message"]
    assert hint in refused.json()["message"] and platform.serve.runs == []


# --- what a new deployment is refused for --------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "turbo"}, "mode: Input should be 'elastic' or 'low_latency'"),
        ({"ram_request": "1GiB"}, "enable_parallel_executions, ram_request and gpu_request only go with"),
        ({"max_parallel_executions_per_pod": 2}, "max_parallel_executions_per_pod needs enable_parallel_executions"),
        ({"mode": "low_latency", "ram_request": "1KiB"}, "ram_request '1KiB' is below 16MiB"),
    ],
)
def test_a_bad_option_is_a_400_naming_the_field(platform, options, message):
    with_pipeline(platform)
    refused = platform.client.post("/api/v1/endpoints", json={"pipeline_name": "double", "name": "dbl", **options})
    assert refused.status_code == 400 and message in refused.json()["message"], refused.json()
    assert platform.client.get("/api/v1/deployments").json() == [] and platform.serve.deploys == []


# --- no Ray --------------------------------------------------------------------------------------

NO_RAY = textwrap.dedent(
    """
    import json, sys, tempfile
    from pathlib import Path

    from tests.fakes import build_platform

    platform = build_platform(Path(tempfile.mkdtemp()) / "home", default=lambda x: {"y": x})
    client = platform.client
    assert platform.create_pipeline("p", {"main.py": "def handler(x):\\n    pass\\n"},
        inputs=[{"name": "x", "data_type": "number"}], outputs=[{"name": "y", "data_type": "number"}]
    ).status_code == 201
    for mode in ("elastic", "low_latency"):
        token = client.post("/api/v1/endpoints", json={"pipeline_name": "p", "name": mode.replace("_", "-"),
            "mode": mode}).json()["endpoint_token"]
        answered = client.post("/endpoints/" + mode.replace("_", "-"), json={"x": 1},
            headers={"Authorization": "EndpointToken " + token})
        assert answered.status_code == 200, answered.text
    platform.close()
    print(json.dumps(sorted(name for name in sys.modules if name.partition(".")[0] == "ray")))
    """
)


def test_the_platform_over_the_fakes_never_imports_ray():
    # In a fresh interpreter: other unit tests import Ray's runtime modules into this one.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RAYLINE_")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", NO_RAY], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
