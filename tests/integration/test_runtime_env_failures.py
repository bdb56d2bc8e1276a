"""A pipeline environment that cannot be set up says why, in what its user reads.

A platform of its own downloads packages over HTTP as on a cluster (``RAYLINE_PACKAGE_URL_BASE``,
its own URL) but its Ray node has no ``RAY_RUNTIME_ENV_BEARER_TOKEN``: every download is refused
(401). An elastic execution then ends ``Error`` saying so; a low-latency deployment ends
``creation_failed`` with the reason in its logs (and in the SDK's exception), once per failure: at
creation, at a reload, and when the platform restarts and restores it. On the shared platform, a
requirement pip cannot find makes a warm pod's creation fail with pip's own error (the elastic
side of it is test_run_pipeline.py's test_a_broken_requirement_is_an_error_not_a_hang).
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from rayline import SdkException
from tests.integration.conftest import Platform, unique, write_folder

REFUSED = "downloading the package "
UNAUTHORIZED = "failed: 401 Unauthorized (the node sent no package token, or a wrong one"
SOURCE = {"main.py": "def f():\n    return {'ok': True}\n"}


@pytest.fixture(scope="module")
def tokenless(tmp_path_factory):
    """A platform whose node downloads packages from it without the package token."""
    instance = Platform(
        tmp_path_factory.mktemp("rayline-tokenless"), extra_env={"RAYLINE_PACKAGE_TOKEN": secrets.token_hex(16)}
    )
    instance.env["RAYLINE_PACKAGE_URL_BASE"] = instance.url  # no RAY_RUNTIME_ENV_BEARER_TOKEN: 401
    instance.start()
    yield instance
    left = instance.stop()
    assert left == [], f"processes left after stopping: {left}"


@pytest.fixture
def tokenless_sdk(tokenless):
    with tokenless.sdk() as client:
        yield client


def _pipeline(sdk, folder, files=SOURCE, **container) -> str:
    name = unique("envfail")
    sdk.create_pipeline(
        name, "main.py", "f", container_config={"local_folder": str(write_folder(folder, files)), **container}
    )
    return name


def _failure_lines(sdk, deployment: str, needle: str) -> list[dict]:
    return [line for line in sdk.get_deployment_logs(deployment) if needle in line["message"]]


def test_an_elastic_execution_says_its_package_could_not_be_downloaded(tokenless, tokenless_sdk, tmp_path):
    pipeline = _pipeline(tokenless_sdk, tmp_path)
    for _ in range(2):  # the second time, a spare worker may be asked for that environment
        with pytest.raises(SdkException) as info:
            tokenless_sdk.run_pipeline(pipeline)
        execution = tokenless_sdk.get_pipeline_execution(info.value.additional_data["execution_id"])
        assert execution["status"] == "Error"
        assert execution["error"].startswith(f"The pipeline's environment could not be set up: {REFUSED}")
        assert UNAUTHORIZED in execution["error"] and "RAY_RUNTIME_ENV_BEARER_TOKEN" in execution["error"]
        assert "Traceback" not in execution["error"]
        logs = tokenless_sdk.get_pipeline_execution_logs(execution["execution_id"])
        assert any(UNAUTHORIZED in line["message"] and line["stream"] == "stderr" for line in logs)
    # Through an elastic endpoint: its caller is sent to the execution, whose record says why.
    endpoint = tokenless_sdk.create_deployment(pipeline, unique("envfail-el"), "endpoint", mode="elastic")
    answer = httpx.post(
        f"{tokenless.url}/endpoints/{endpoint['endpoint_url_path']}",
        json={},
        headers={"Authorization": f"EndpointToken {endpoint['endpoint_token']}"},
        timeout=120,
        follow_redirects=True,
    )
    assert answer.status_code == 500 and "platform failure" in answer.json()["message"], answer.text
    execution = tokenless_sdk.get_pipeline_execution(answer.json()["execution_id"])
    assert execution["status"] == "Error" and UNAUTHORIZED in execution["error"]
    tokenless_sdk.delete_pipeline(pipeline, force_deployments_deletion=True)


def test_a_warm_pod_that_cannot_download_its_package_is_creation_failed_saying_why(tokenless, tmp_path):
    sdk = tokenless.sdk()
    pipeline = _pipeline(sdk, tmp_path)
    name = unique("envfail-ll")
    with pytest.raises(SdkException) as info:
        sdk.create_deployment(pipeline, name, "endpoint", mode="low_latency", timeout_s=240)
    assert info.value.name == "CreationFailedException"
    assert f"The pod's environment could not be set up: {REFUSED}" in info.value.message
    assert UNAUTHORIZED in info.value.message
    assert sdk.get_deployment(name)["status"] == "creation_failed"
    told = _failure_lines(sdk, name, UNAUTHORIZED)
    assert len(told) == 1 and told[0]["stream"] == "stderr", told
    assert len(told[0]["message"]) < 2100 and "Traceback" not in told[0]["message"]

    # A reload tries again, and its failure is told again.
    with pytest.raises(SdkException) as info:
        sdk.update_deployment(name, timeout_s=240)
    assert UNAUTHORIZED in info.value.message
    assert len(_failure_lines(sdk, name, UNAUTHORIZED)) == 2

    # At start-up the platform restores it (reconcile): the same failure, told after the restore.
    sdk.close()
    tokenless.restart()
    sdk = tokenless.sdk()
    with pytest.raises(SdkException) as info:
        sdk.get_deployment(name, wait_for_completion=True, timeout_s=240)
    assert UNAUTHORIZED in info.value.message
    messages = [line["message"] for line in sdk.get_deployment_logs(name)]
    restored = max(i for i, message in enumerate(messages) if message == "Platform started: restoring the pod.")
    assert any(UNAUTHORIZED in message for message in messages[restored + 1 :]), messages
    assert len(_failure_lines(sdk, name, UNAUTHORIZED)) == 3
    sdk.delete_pipeline(pipeline, force_deployments_deletion=True)
    sdk.close()


def test_a_warm_pod_whose_requirement_pip_cannot_install_is_creation_failed_with_pip_s_error(sdk, tmp_path):
    pipeline = _pipeline(
        sdk,
        tmp_path,
        {**SOURCE, "requirements.txt": "rayline-no-such-package-xyz==1.0\n"},
        requirements_path="requirements.txt",
    )
    name = unique("pipfail-ll")
    with pytest.raises(SdkException) as info:
        sdk.create_deployment(pipeline, name, "endpoint", mode="low_latency", timeout_s=300)
    assert info.value.name == "CreationFailedException"
    assert "The pod's environment could not be set up: installing its requirements failed (pip install" in (
        info.value.message
    )
    assert "No matching distribution found for rayline-no-such-package-xyz==1.0" in info.value.message
    assert "Looking in indexes" not in info.value.message  # pip's errors, not its whole output
    assert sdk.get_deployment(name)["status"] == "creation_failed"
    assert len(_failure_lines(sdk, name, "No matching distribution found")) == 1
    sdk.delete_pipeline(pipeline, force_deployments_deletion=True)
