"""Input sources, output destinations and environment variables, over real HTTP."""

import contextlib
import uuid

import httpx
import pytest

from rayline import Input, InputSource, Output, OutputDestination, SdkException
from tests.integration.conftest import unique, write_folder
from tests.integration.test_deployments import readable_within_1s

MODULE = {
    "main.py": """
        import os

        def handler(text, count, flag, greeting):
            mine = {k: v for k, v in os.environ.items() if k.startswith("RLTEST_")}
            return {"summary": f"{text}|{count}|{flag}|{greeting}", "env": mine, "dropped": 1}
    """,
}
INPUTS = [
    Input("text", "string"),
    Input("count", "number"),
    Input("flag", "boolean", is_required=False),
    Input("greeting", "string", is_required=False),
]
OUTPUTS = [Output("summary", "string"), Output("env", "json"), Output("dropped", "number")]


@pytest.fixture(scope="module")
def pipeline(platform, tmp_path_factory):
    sdk = platform.sdk()
    name = unique("mapped")
    folder = write_folder(tmp_path_factory.mktemp("mapped"), MODULE)
    sdk.create_pipeline(
        name, "main.py", "handler", container_config={"local_folder": str(folder)}, inputs=INPUTS, outputs=OUTPUTS
    )
    yield name
    sdk.delete_pipeline(name, force_deployments_deletion=True)


@pytest.fixture
def variable(sdk):
    """A unique environment variable name (they are platform-wide), deleted after the test."""
    names = []

    def make(suffix: str) -> str:
        names.append(f"RLTEST_{uuid.uuid4().hex[:8].upper()}_{suffix}")
        return names[-1]

    yield make
    for name in names:
        with contextlib.suppress(SdkException):
            sdk.delete_environment_variable(name)


def call(platform, deployment, body):
    return httpx.post(
        f"{platform.url}/endpoints/{deployment['endpoint_url_path']}",
        json=body,
        timeout=60,
        follow_redirects=True,
        headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"},
    )


def test_environment_variables_are_checked_listed_and_deleted(sdk, variable):
    name = variable("MODE")
    sdk.create_or_update_environment_variable(name, "blue")
    sdk.create_or_update_environment_variable(name, "green")  # replaced, not duplicated
    assert [v for v in sdk.list_environment_variables() if v["name"] == name] == [{"name": name, "value": "green"}]
    for bad, fragment in (("lower_case", "capital letters"), ("RAY_ADDRESS", "reserved"), ("9LIVES", "not valid")):
        with pytest.raises(SdkException) as info:
            sdk.create_or_update_environment_variable(bad, "x")
        assert info.value.status_code == 400 and fragment in info.value.message
    sdk.delete_environment_variable(name)
    assert name not in [v["name"] for v in sdk.list_environment_variables()]
    with pytest.raises(SdkException) as info:
        sdk.delete_environment_variable(name)
    assert info.value.status_code == 404


@pytest.mark.parametrize("mode", ["low_latency", "elastic"])
def test_every_mapping_kind_over_http_and_environment_changes_reach_the_next_execution(
    platform, sdk, pipeline, variable, mode
):
    greeting, colour = variable("GREETING"), variable("COLOUR")
    sdk.create_or_update_environment_variable(greeting, "hi")
    sdk.create_or_update_environment_variable(colour, "blue")
    name = unique(f"mapped-{mode.replace('_', '-')}")
    deployment = sdk.create_deployment(
        pipeline,
        name,
        "endpoint",
        mode=mode,
        inputs_mapping=[
            InputSource("text", endpoint_input_name="message"),
            InputSource("count", constant_value=7),
            InputSource("flag", is_null=True),
            InputSource("greeting", environment_variable_name=greeting),
        ],
        outputs_mapping=[
            OutputDestination("summary", endpoint_output_name="result"),
            OutputDestination("dropped", is_null=True),
        ],
    )
    assert {m["pipeline_input_name"]: m for m in deployment["inputs_mapping"]}["count"]["constant_value"] == 7

    response = call(platform, deployment, {"message": "m"})
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["result"] == "m|7|None|hi" and "dropped" not in output
    assert output["env"] == {greeting: "hi", colour: "blue"}  # unmapped: under its own name

    execution = readable_within_1s(sdk, response.json()["execution_id"], "Succeeded")
    sources = {i["pipeline_input_name"]: (i["source"], i["value"]) for i in execution["inputs"]}
    assert sources == {
        "text": ("endpoint", "m"),
        "count": ("constant", 7),
        "flag": ("is_null", None),
        "greeting": ("environment_variable", None),
    }  # a variable's value is not recorded
    destinations = {o["pipeline_output_name"]: o["destination"] for o in execution["outputs"]}
    assert destinations == {"summary": "endpoint", "env": "endpoint", "dropped": "is_null"}

    # A change is seen by the very next execution, without a restart.
    pods = [p["pod_id"] for p in sdk.get_deployment(name).get("pods") or []]
    sdk.create_or_update_environment_variable(colour, "green")
    sdk.create_or_update_environment_variable(greeting, "hello")
    output = call(platform, deployment, {"message": "m"}).json()["output"]
    assert output["result"] == "m|7|None|hello" and output["env"][colour] == "green"
    sdk.delete_environment_variable(colour)
    assert colour not in call(platform, deployment, {"message": "m"}).json()["output"]["env"]
    assert [p["pod_id"] for p in sdk.get_deployment(name).get("pods") or []] == pods

    for body, status, fragment in (
        ({}, 400, "'message' (string) is required"),
        ({"message": 3}, 400, "'message': expected a string"),
        ({"message": "m", "text": "t"}, 400, "Unknown input(s) 'text'"),
    ):
        response = call(platform, deployment, body)
        assert response.status_code == status and fragment in response.json()["message"], response.text

    # Constants can change; a warm pod reloads to take them.
    sdk.update_deployment(name, inputs_mapping=[InputSource("count", constant_value=8)])
    assert call(platform, deployment, {"message": "m"}).json()["output"]["result"] == "m|8|None|hello"
    with pytest.raises(SdkException, match="only give constant mappings a new constant_value"):
        sdk.update_deployment(name, inputs_mapping=[InputSource("text", constant_value="x")])
    sdk.delete_deployment(name)


def test_run_pipeline_takes_constants_environment_variables_and_null(sdk, pipeline, variable):
    greeting = variable("GREETING")
    sdk.create_or_update_environment_variable(greeting, "salut")
    result = sdk.run_pipeline(
        pipeline,
        {"text": "t"},
        inputs_mapping=[
            InputSource("count", constant_value=1),
            InputSource("flag", is_null=True),
            InputSource("greeting", environment_variable_name=greeting),
        ],
        outputs_mapping=[OutputDestination("dropped", is_null=True)],
    )
    assert result["outputs"]["summary"] == "t|1|None|salut" and result["outputs"]["env"][greeting] == "salut"
    execution = sdk.get_pipeline_execution(result["execution_id"])
    assert {i["pipeline_input_name"]: i["source"] for i in execution["inputs"]} == {
        "text": "run",
        "count": "constant",
        "flag": "is_null",
        "greeting": "environment_variable",
    }
    with pytest.raises(SdkException) as info:
        sdk.run_pipeline(pipeline, {"text": "t"}, inputs_mapping=[InputSource("count", endpoint_input_name="n")])
    assert info.value.status_code == 400 and "only endpoint deployments" in info.value.message


def test_bad_mappings_are_refused_at_creation_and_nothing_is_created(sdk, pipeline):
    name = unique("bad-map")
    for mapping, fragment in (
        ([InputSource("count", constant_value="seven")], "does not match the input's data_type"),
        ([InputSource("nope", constant_value=1)], "not declared by the pipeline"),
        ([InputSource("text", datastore_path="a/b")], "maps a file input"),
    ):
        with pytest.raises(SdkException) as info:
            sdk.create_deployment(pipeline, name, "endpoint", inputs_mapping=mapping)
        assert info.value.status_code == 400 and fragment in info.value.message
    assert name not in [d["name"] for d in sdk.list_deployments()]
