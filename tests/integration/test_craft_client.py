"""The published craft-ai-sdk 0.74.7 client, unchanged, against a running Rayline (wire compatibility).

Our own RaylineSdk drives the same routes in the other integration tests.
"""

import warnings
from datetime import datetime, timedelta

import httpx
import jwt
import pytest

with warnings.catch_warnings():  # importing the client turns every DeprecationWarning on, for good
    from craft_ai_sdk import CraftAiSdk, Input, InputSource, Output, OutputDestination
    from craft_ai_sdk.exceptions import SdkException as CraftSdkException

from rayline.domain.access_tokens import AccessTokens
from rayline.domain.tokens import hash_token
from tests.integration.conftest import unique, write_folder

MULTIPLY = {
    "src/main.py": """
        print("loading the multiplier at import")

        def multiply(a, b):
            print(f"multiplying {a} by {b}")
            return {"result": a * b}
    """,
    "requirements.txt": "",
}


@pytest.fixture(scope="module")
def craft(platform):
    return CraftAiSdk(sdk_token=platform.token, environment_url=platform.url, control_url=platform.url)


@pytest.fixture(scope="module")
def multiply(craft, tmp_path_factory):
    name = unique("craft-multiply")
    folder = write_folder(tmp_path_factory.mktemp("craft"), MULTIPLY)
    craft.create_pipeline(
        name,
        function_path="src/main.py",
        function_name="multiply",
        container_config={"local_folder": str(folder), "requirements_path": "requirements.txt"},
        inputs=[Input("a", "number"), Input("b", "number", is_required=False, default_value=2)],
        outputs=[Output("result", "number")],
    )
    yield name
    craft.delete_pipeline(name, force_deployments_deletion=True)


def test_the_client_logs_in_with_a_short_lived_signed_access_token(platform, craft):
    craft.list_pipelines()  # the first call refreshes
    claims = jwt.decode(craft._access_token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600

    refreshes = []
    original = craft._query_refresh_access_token
    craft._query_refresh_access_token = lambda: refreshes.append(1) or original()
    craft._access_token_valid_until = datetime.now() + timedelta(seconds=60)  # within the 120 s margin
    craft.list_pipelines()
    assert refreshes == [1]

    key = (platform.home / "secret-key").read_bytes().strip()
    expired = AccessTokens(key, hash_token(platform.token), ttl_s=-10).issue()
    forged = jwt.encode(
        {"iss": "rayline", "sub": "sdk", "iat": 0, "exp": 2**33},
        "not the platform's key, but long enough",
        algorithm="HS256",
    )
    for token, fragment in ((expired, "expired"), (forged, "not issued by this platform")):
        response = httpx.get(f"{platform.url}/api/v1/pipelines", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and fragment in response.json()["message"]
    bad = httpx.post(f"{platform.url}/api/v1/auth/refresh", json={"refresh_token": "wrong" * 5})
    assert bad.status_code == 401


def test_seed_walk_through_pipelines_and_executions(platform, craft, multiply):
    pipeline = craft.get_pipeline(multiply)
    assert pipeline["parameters"]["function_name"] == "multiply"
    assert pipeline["creation_info"]["status"] == "ready" and pipeline["creation_info"]["last_execution_id"] is None
    assert multiply in [p["pipeline_name"] for p in craft.list_pipelines()]

    result = craft.run_pipeline(multiply, inputs={"a": 6, "b": 7})
    assert result["outputs"] == {"result": 42}
    execution_id = result["execution_id"]
    execution = craft.get_pipeline_execution(execution_id)
    assert execution["status"] == "Succeeded"
    assert {i["pipeline_input_name"]: (i["source"], i["value"]) for i in execution["inputs"]} == {
        "a": ("run", 6),
        "b": ("run", 7),
    }
    assert execution["outputs"][0]["value"] == 42
    logs = craft.get_pipeline_execution_logs(execution_id)
    assert "multiplying 6 by 7" in [line["message"] for line in logs]
    assert craft.get_pipeline_execution_output(execution_id, "result")["value"] == 42
    assert execution_id in [e["execution_id"] for e in craft.list_pipeline_executions(multiply)]
    assert craft.get_pipeline(multiply)["creation_info"]["last_execution_id"] == execution_id

    mapped = craft.run_pipeline(
        multiply,
        inputs={"a": 5},
        inputs_mapping=[InputSource("b", constant_value=3)],
        outputs_mapping=[OutputDestination("result", is_null=True)],
    )
    assert mapped["outputs"] == {"result": None}
    with pytest.raises(CraftSdkException) as info:
        craft.run_pipeline(multiply, inputs={"a": "six"})
    assert info.value.status_code == 400 and "'a'" in info.value.message
    craft.delete_pipeline_execution(mapped["execution_id"])


def test_seed_walk_through_deployments_endpoints_and_logs(platform, craft, multiply):
    name = unique("craft-warm")
    deployment = craft.create_deployment(
        multiply,
        name,
        "endpoint",
        mode="low_latency",
        enable_parallel_executions=True,
        max_parallel_executions_per_pod=2,
    )
    assert deployment["status"] == "up" and deployment["last_execution_id"] is None
    token = deployment["endpoint_token"]

    raw = httpx.post(
        f"{platform.url}/endpoints/{deployment['endpoint_url_path']}",
        json={"a": 3, "b": 5},
        headers={"Authorization": f"EndpointToken {token}"},
    )
    assert raw.status_code == 200 and raw.json()["output"] == {"result": 15}
    logs = [line["message"] for line in craft.get_deployment_logs(name)]
    assert "loading the multiplier at import" in logs

    with_token = craft.trigger_endpoint(name, endpoint_token=token, inputs={"a": 4})
    assert with_token["outputs"] == {"result": 8}
    without = craft.trigger_endpoint(name, inputs={"a": 10, "b": 10})
    assert without["outputs"] == {"result": 100}
    started = craft.trigger_endpoint(name, endpoint_token=token, inputs={"a": 2, "b": 3}, wait_for_completion=False)
    assert craft.retrieve_endpoint_results(name, started["execution_id"], endpoint_token=token)["outputs"] == {
        "result": 6
    }
    assert craft.get_deployment(name)["last_execution_id"] == started["execution_id"]
    assert name in [d["name"] for d in craft.list_deployments()]

    new_token = craft.generate_new_endpoint_token(name)["endpoint_token"]
    refused = httpx.post(
        f"{platform.url}/endpoints/{deployment['endpoint_url_path']}",
        json={"a": 1},
        headers={"Authorization": f"EndpointToken {token}"},
    )
    assert refused.status_code == 401
    assert craft.trigger_endpoint(name, endpoint_token=new_token, inputs={"a": 1})["outputs"] == {"result": 2}

    assert craft.update_deployment(name, is_enabled=False)["status"] == "disabled"
    assert craft.update_deployment(name, is_enabled=True)["status"] == "up"
    craft.delete_deployment(name)
    with pytest.raises(CraftSdkException) as info:
        craft.get_deployment(name)
    assert info.value.status_code == 404


def test_elastic_endpoints_periodic_deployments_and_environment_variables(platform, craft, multiply):
    elastic = unique("craft-elastic")
    deployment = craft.create_deployment(
        multiply,
        elastic,
        "endpoint",
        mode="elastic",
        outputs_mapping=[OutputDestination("result", endpoint_output_name="product")],
    )
    assert craft.trigger_endpoint(elastic, endpoint_token=deployment["endpoint_token"], inputs={"a": 9, "b": 9})[
        "outputs"
    ] == {"product": 81}

    for mode in ("elastic", "low_latency"):
        name = unique(f"craft-periodic-{mode.replace('_', '-')}")
        periodic = craft.create_deployment(
            multiply,
            name,
            "periodic",
            mode=mode,
            schedule="0 3 * * *",
            inputs_mapping=[InputSource("a", constant_value=1), InputSource("b", constant_value=1)],
            outputs_mapping=[OutputDestination("result", is_null=True)],
        )
        assert periodic["status"] == "up" and periodic["schedule"] == "0 3 * * *"
        assert periodic["human_readable_schedule"] == "At 03:00"
        updated = craft.update_deployment(name, schedule="30 4 * * *")
        assert updated["schedule"] == "30 4 * * *"
        craft.delete_deployment(name)

    variable = f"RLTEST_CRAFT_{unique('v').split('-')[1].upper()}"
    craft.create_or_update_environment_variable(variable, "on")
    assert {"name": variable, "value": "on"} in craft.list_environment_variables()
    craft.delete_environment_variable(variable)
    assert variable not in [v["name"] for v in craft.list_environment_variables()]
    craft.delete_deployment(elastic)


@pytest.mark.parametrize(
    "call",
    [
        lambda craft: craft.list_pipeline_templates(),
        lambda craft: craft.get_vector_database_credentials(),
        lambda craft: craft.get_user("someone"),
    ],
)
def test_what_rayline_does_not_offer_is_a_clear_501(craft, call):
    with pytest.raises(CraftSdkException) as info:
        call(craft)
    assert info.value.status_code == 501 and "Rayline does not support" in info.value.message
