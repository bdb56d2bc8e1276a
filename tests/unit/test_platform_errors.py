"""What a user reads when the platform, not their code, fails an execution or a warm pod: Ray's
errors (a runtime env that could not be set up, a lost node, a dead worker) told by their cause,
bounded, without Ray's tracebacks. The messages are shaped as Ray 2.60 and Serve write them (taken
from real failures: a node downloading packages without the package token, a requirement pip
cannot find)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.exceptions import (
    NodeDiedError,
    RayTaskError,
    RuntimeEnvSetupError,
    TaskCancelledError,
    WorkerCrashedError,
)

from rayline.runtime import serve_deployments
from rayline.runtime.elastic import _platform_error, runtime_env_failure
from rayline.runtime.serve_deployments import ServeDeployments, pod_failure
from tests.fakes import FakePlatform, platform_factory

SITE = "/venv/lib/python3.11/site-packages"
PACKAGE = "http://127.0.0.1:53979/api/v1/packages/ab2f4e99.zip"
AGENT = f"""Could not create the actor because its associated runtime env failed to be created.
[Node 192.0.2.2] Traceback (most recent call last):
  File "{SITE}/ray/_private/runtime_env/agent/runtime_env_agent.py", line 561, in _create_runtime_env_with_retry
    runtime_env_context = await asyncio.wait_for(
                          ^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/ray/_private/runtime_env/plugin.py", line 255, in create_for_plugin_if_needed
    size_bytes = await plugin.create(uri, runtime_env, context, logger=logger)
                 ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
"""
DOWNLOAD = f"""  File "{SITE}/ray/_private/runtime_env/working_dir.py", line 260, in create
    local_dir = await download_and_unpack_package(
  File "{SITE}/ray/_private/runtime_env/packaging.py", line 992, in download_and_unpack_package
    protocol.download_remote_uri(source_uri=pkg_uri, dest_file=pkg_file)
  File "{SITE}/requests/models.py", line 1167, in raise_for_status
    raise HTTPError(http_error_msg, response=self)
"""
UNAUTHORIZED = f"requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: {PACKAGE}\n"
REFUSED = (
    "requests.exceptions.ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded "
    "with url: /api/v1/packages/ab2f4e99.zip (Caused by NewConnectionError(\"HTTPConnection(host='127.0.0.1', "
    'port=1): Failed to establish a new connection: [Errno 111] Connection refused"))\n'
)
UNRESOLVED = (
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='rayline.invalid', port=443): Max retries "
    'exceeded with url: /api/v1/packages/ab2f4e99.zip (Caused by NameResolutionError("HTTPSConnection('
    "host='rayline.invalid', port=443): Failed to resolve 'rayline.invalid' ([Errno -2] Name or service not "
    'known)"))\n'
)
TIMED_OUT = (
    "requests.exceptions.ConnectionError: HTTPConnectionPool(host='10.0.0.9', port=8000): Max retries exceeded "
    "with url: /api/v1/packages/ab2f4e99.zip (Caused by ConnectTimeoutError(<urllib3.connection.HTTPConnection "
    "object at 0x7f2a>, 'Connection to 10.0.0.9 timed out. (connect timeout=10)'))\n"
)
PIP = f"""  File "{SITE}/ray/_private/runtime_env/pip.py", line 252, in _install_pip_packages
    await check_output_cmd(pip_install_cmd, logger=logger, cwd=cwd, env=pip_env)
  File "{SITE}/ray/_private/runtime_env/utils.py", line 105, in check_output_cmd
    raise SubprocessCalledProcessError(
ray._private.runtime_env.utils.SubprocessCalledProcessError: Run cmd[9] failed with the following details.
Command '['/tmp/ray/session/runtime_resources/pip/159a/virtualenv/bin/python', '-m', 'pip', 'install', '-r', \
'/tmp/ray/session/runtime_resources/pip/159a/ray_runtime_env_internal_pip_requirements.txt', \
'--disable-pip-version-check', '--no-cache-dir']' returned non-zero exit status 1.
Last 50 lines of stdout:
    Looking in indexes: https://pypi.org/simple
    WARNING: Location 'file:///opt/pypi/simple/rayline-no-such-package-xyz/' is ignored: it is neither a file.
    ERROR: Could not find a version that satisfies the requirement rayline-no-such-package-xyz==1.0 \
(from versions: none)
    ERROR: No matching distribution found for rayline-no-such-package-xyz==1.0
"""
PIP_ERRORS = (
    "ERROR: Could not find a version that satisfies the requirement rayline-no-such-package-xyz==1.0 (from "
    "versions: none)\nERROR: No matching distribution found for rayline-no-such-package-xyz==1.0"
)
SERVE_FAILED = (
    "The deployment failed to start 3 times in a row. This may be due to a problem with its constructor or initial "
    "health check failing. See controller logs for details. Error:\nException when allocating Replica(id='32d0pcta', "
    "deployment='pipeline', app='d401'): Failed to set up runtime environment.\n"
)
NODE_DIED = (
    "Task failed because the node it was running on is dead or unavailable. Node IP: 192.0.2.7, node ID: "
    "3f2a9c0e1b. This can happen if the node was preempted, had a hardware failure, or its raylet crashed "
    "unexpectedly. To see node death information, use `ray list nodes --filter node_id=3f2a9c0e1b`, check the Ray "
    "dashboard cluster page, search the node ID in the GCS logs, or use `ray logs raylet.out -ip 192.0.2.7`."
)


def env_error(*parts: str) -> RuntimeEnvSetupError:
    return RuntimeEnvSetupError(AGENT + "".join(parts))


# --- elastic executions: the execution's error -------------------------------------------------


def test_a_package_download_refused_says_which_status_and_what_to_set():
    message = _platform_error(env_error(DOWNLOAD, UNAUTHORIZED))
    assert message == (
        f"The pipeline's environment could not be set up: downloading the package {PACKAGE} failed: 401 "
        "Unauthorized (the node sent no package token, or a wrong one: Ray's nodes need "
        "RAY_RUNTIME_ENV_BEARER_TOKEN set to the platform's RAYLINE_PACKAGE_TOKEN)."
    )


@pytest.mark.parametrize(
    ("error_line", "cause"),
    [
        (UNAUTHORIZED.replace("401 Client Error: Unauthorized", "403 Client Error: Forbidden"), "403 Forbidden ("),
        (UNAUTHORIZED.replace("401 Client Error: Unauthorized", "404 Client Error: Not Found"), "404 Not Found ("),
        (
            UNAUTHORIZED.replace("401 Client Error: Unauthorized", "503 Server Error: Service Unavailable"),
            "503 Service Unavailable (the platform failed to serve it).",
        ),
        (REFUSED, "http://127.0.0.1:1/api/v1/packages/ab2f4e99.zip failed: Failed to establish a new connection: "),
        (REFUSED, "[Errno 111] Connection refused (check that Ray's nodes reach the platform at "),
        (UNRESOLVED, "https://rayline.invalid/api/v1/packages/ab2f4e99.zip failed: Failed to resolve 'rayline."),
        (TIMED_OUT, "failed: Connection to 10.0.0.9 timed out. (connect timeout=10) (check that"),
    ],
)
def test_a_package_download_that_failed_says_how(error_line, cause):
    message = _platform_error(env_error(DOWNLOAD, error_line))
    assert message.startswith("The pipeline's environment could not be set up: downloading the package ")
    assert cause in message
    assert "Traceback" not in message and "^^^" not in message and "Caused by" not in message


def test_a_requirement_pip_cannot_install_shows_pip_s_errors_only():
    message = _platform_error(env_error(PIP))
    assert message == (
        "The pipeline's environment could not be set up: installing its requirements failed (pip install exited "
        f"with status 1; check the pipeline's requirements file):\n{PIP_ERRORS}"
    )


def test_pip_s_last_lines_when_it_printed_no_error_line():
    quiet = (
        PIP.split("Last 50 lines")[0]
        + "Last 50 lines of stdout:\n"
        + "".join(f"    building line {n}\n" for n in range(40))
    )
    message = _platform_error(env_error(quiet))
    assert "exited with status 1" in message and "building line 39" in message
    assert "building line 24" not in message  # the last 15 lines


def test_another_environment_failure_shows_ray_s_last_error_bounded():
    other = AGENT + "ValueError: " + "x" * 5000 + "\n"
    message = _platform_error(RuntimeEnvSetupError(other))
    assert message.startswith("The pipeline's environment could not be set up: ValueError: xxx")
    assert len(message) < 2100 and "\n...\n" in message
    # No traceback at all: Ray's own sentences are dropped, the rest kept.
    assert runtime_env_failure("Failed to set up runtime environment.\nThe runtime_env setup timed out.") == (
        "The runtime_env setup timed out."
    )


def test_a_lost_node_names_the_node():
    message = _platform_error(NodeDiedError(NODE_DIED))
    assert message == "The node running this execution (Ray node 3f2a9c0e1b) was lost before it ended."
    assert (
        _platform_error(NodeDiedError("gone"))
        == "The node running this execution (Ray node unknown) was lost before it ended."
    )


def test_the_other_platform_errors_keep_their_messages():
    died = "The worker process running the execution died (out of memory, or killed)."
    assert _platform_error(WorkerCrashedError()) == died
    assert _platform_error(TaskCancelledError()) == "The execution was cancelled."
    task_error = RayTaskError("run_in_child", "Traceback...\nKeyError: 'x'", KeyError("x"))
    assert _platform_error(task_error).startswith("Rayline's worker failed: ")
    assert _platform_error(OSError("disk")) == "The execution could not run: OSError: disk"


# --- warm pods: what Serve says, in words ------------------------------------------------------


def test_a_pod_whose_environment_failed_says_why():
    assert pod_failure(SERVE_FAILED + AGENT + DOWNLOAD + UNAUTHORIZED) == (
        f"The pod's environment could not be set up: downloading the package {PACKAGE} failed: 401 Unauthorized "
        "(the node sent no package token, or a wrong one: Ray's nodes need RAY_RUNTIME_ENV_BEARER_TOKEN set to "
        "the platform's RAYLINE_PACKAGE_TOKEN)."
    )
    assert pod_failure(SERVE_FAILED + AGENT + PIP).endswith(f"requirements file):\n{PIP_ERRORS}")


def test_a_pod_whose_constructor_failed_says_its_last_error():
    constructor = (
        "The deployment failed to start 3 times in a row. This may be due to a problem with its constructor or "
        "initial health check failing. See controller logs for details. Error:\n"
        "ray::ServeReplica:broken:pipeline.initialize_and_get_metadata() (pid=42, ip=192.0.2.2)\n"
        '  File "/app/main.py", line 1, in <module>\n    import no_such_module_here\n'
        "ModuleNotFoundError: No module named 'no_such_module_here'\n"
    )
    assert pod_failure(constructor) == (
        "The pod failed to start 3 times in a row: ModuleNotFoundError: No module named 'no_such_module_here'"
    )
    rolling = constructor.replace("3 times in a row.", "3 times in a row during a rolling update.")
    assert pod_failure(rolling).startswith("The pods of the new version failed to start 3 times in a row: Module")
    assert pod_failure("Failed to update the deployments ['pipeline'].") == (
        "Failed to update the deployments ['pipeline']."
    )


def status_of(status: str, message: str, deployments: dict) -> SimpleNamespace:
    return SimpleNamespace(
        applications={
            "warm": SimpleNamespace(status=SimpleNamespace(value=status), message=message, deployments=deployments)
        }
    )


def test_states_tell_a_failed_application_s_reason(monkeypatch):
    failed = SimpleNamespace(
        status=SimpleNamespace(value="DEPLOY_FAILED"),
        message=SERVE_FAILED + AGENT + DOWNLOAD + UNAUTHORIZED,
        replica_states={},
    )
    serve_status = status_of("DEPLOY_FAILED", "Failed to update the deployments ['pipeline'].", {"pipeline": failed})
    monkeypatch.setattr(serve_deployments.serve, "status", lambda: serve_status)
    state = ServeDeployments(lambda *a, **k: None).states()["warm"]
    assert state.status == "DEPLOY_FAILED"
    assert state.message.startswith("The pod's environment could not be set up: downloading the package ")
    # A deploying application keeps Serve's own message (nothing failed yet).
    starting = SimpleNamespace(status="DEPLOYING", message="A replica failed to start... Retrying.", replica_states={})
    monkeypatch.setattr(serve_deployments.serve, "status", lambda: status_of("DEPLOYING", "", {"pipeline": starting}))
    assert ServeDeployments(lambda *a, **k: None).states()["warm"].message == ""


# --- the deployment's logs: the reason, once per failure -----------------------------------------

REASON = "The pod's environment could not be set up: downloading the package x failed: 401 Unauthorized."


@pytest.fixture
def platform(tmp_path, monkeypatch):
    make = platform_factory(tmp_path, monkeypatch)
    instance: FakePlatform = next(make)(functions={})
    original = instance.serve.states

    def states():
        found = original()
        for state in found.values():
            if state.status == "DEPLOY_FAILED":
                state.message = REASON
        return found

    monkeypatch.setattr(instance.serve, "states", states)
    yield instance
    next(make, None)


def failure_lines(platform: FakePlatform) -> list[dict]:
    logs = platform.client.post("/api/v1/deployments/warm/logs", json={}).json()
    return [line for line in logs if line["message"] == REASON]


def test_a_failed_pod_s_reason_is_logged_once_and_again_for_a_new_failure(platform):
    created = platform.create_pipeline("double", {"main.py": "def handler():\n    return {}\n"})
    assert created.status_code == 201, created.text
    deployed = platform.client.post(
        "/api/v1/endpoints", json={"pipeline_name": "double", "name": "warm", "mode": "low_latency"}
    )
    assert deployed.status_code == 201, deployed.text
    platform.serve.status["warm"] = "DEPLOY_FAILED"
    # Reading the logs alone finds the failure (after a restart, nobody may have asked get_deployment).
    assert [line["stream"] for line in failure_lines(platform)] == ["stderr"]
    for _ in range(3):
        assert platform.client.get("/api/v1/deployments/warm").json()["status"] == "creation_failed"
    assert len(failure_lines(platform)) == 1
    # A reload is tried again: its failure is a new one, told again.
    reloaded = platform.client.patch("/api/v1/deployments/warm", json={})
    assert reloaded.status_code == 200, reloaded.text
    assert platform.client.get("/api/v1/deployments/warm").json()["status"] == "creation_failed"
    assert len(failure_lines(platform)) == 2
