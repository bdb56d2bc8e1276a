"""The SDK's public surface, pinned: changing it is a decision, not an accident."""

import subprocess
import sys

import pytest

import rayline
from rayline import Input, InputSource, Output, OutputDestination, RaylineSdk, SdkException


def test_public_names_are_exactly_all():
    assert rayline.__all__ == [
        "INPUT_OUTPUT_TYPES",
        "Input",
        "InputSource",
        "Output",
        "OutputDestination",
        "RaylineSdk",
        "SdkException",
        "current_execution_id",
    ]


def test_importing_the_sdk_loads_neither_ray_nor_the_server():
    code = (
        "import sys, rayline; from rayline import RaylineSdk; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'fastapi', 'starlette', 'sqlalchemy', "
        "'uvicorn', 'pydantic_settings'}); print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_bad_arguments_raise_value_errors_before_any_request(tmp_path):
    with pytest.raises(ValueError, match="data_type must be one of"):
        Input("x", "integer")
    with pytest.raises(ValueError, match="valid Python identifier"):
        Output("my output", "string")
    with pytest.raises(ValueError, match="several sources"):
        InputSource("x", constant_value=1, is_null=True)
    with pytest.raises(ValueError, match="only go with an endpoint input"):
        InputSource("x", constant_value=1, is_required=True)
    with pytest.raises(ValueError, match="several destinations"):
        OutputDestination("y", endpoint_output_name="z", is_null=True)
    sdk = RaylineSdk(sdk_token="t" * 20, environment_url="http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ValueError, match="local_folder"):
        sdk.create_pipeline("p", "main.py", "f", container_config={})
    with pytest.raises(ValueError, match="list of Input"):
        sdk.create_pipeline("p", "main.py", "f", container_config={"local_folder": str(tmp_path)}, inputs=["a"])
    with pytest.raises(ValueError, match="'inputs' must be a dict"):
        sdk.run_pipeline("p", inputs=[1])


def test_an_unreachable_platform_is_an_sdk_exception_that_says_what_to_check():
    sdk = RaylineSdk(sdk_token="t" * 20, environment_url="http://127.0.0.1:9")
    with pytest.raises(SdkException) as info:
        sdk.list_pipelines()
    assert info.value.name == "RequestError"
    assert "make up" in info.value.message


def test_a_missing_token_says_where_to_find_one(monkeypatch, tmp_path):
    monkeypatch.delenv("RAYLINE_SDK_TOKEN", raising=False)
    monkeypatch.setenv("RAYLINE_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="RAYLINE_SDK_TOKEN"):
        RaylineSdk()
    (tmp_path / "sdk-token").write_text("from-the-file\n")
    monkeypatch.setenv("RAYLINE_ENVIRONMENT_URL", "http://example.invalid:1/")
    sdk = RaylineSdk()
    assert sdk.environment_url == "http://example.invalid:1"
    assert sdk._client.headers["authorization"] == "Bearer from-the-file"
    assert "example.invalid" in repr(sdk)


def test_waiting_shows_a_status_line_only_where_someone_watches():
    import io

    from rayline.sdk.progress import StatusLine

    shown = io.StringIO()
    line = StatusLine("Deployment 'd'", enabled=True, stream=shown)
    line.update("creation_pending")
    line.close("up")
    first, last = shown.getvalue().split("\r")[1:]
    assert first == "Deployment 'd': creation_pending, 0 s"
    assert last.rstrip() == "Deployment 'd': up, 0 s" and len(last) == len(first) + 1  # padded over, then a newline
    piped = io.StringIO()  # not a terminal, not a notebook: silent
    quiet = StatusLine("Deployment 'd'", stream=piped)
    quiet.update("creation_pending")
    quiet.close("up")
    assert piped.getvalue() == ""


def test_repr_names_the_platform():
    assert repr(RaylineSdk(sdk_token="t" * 20, environment_url="http://127.0.0.1:9/")) == (
        "RaylineSdk(environment_url='http://127.0.0.1:9')"
    )
