import io
import tarfile

import pytest

from rayline import Input, Output, SdkException
from tests.integration.conftest import unique, write_folder

MULTIPLY = {
    "main.py": """
    def multiply(a, b=2):
        return {"result": a * b}
"""
}


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_create_get_list_delete(sdk, tmp_path):
    name = unique("multiply")
    folder = write_folder(tmp_path, MULTIPLY)
    created = sdk.create_pipeline(
        name,
        "main.py",
        "multiply",
        description="a * b",
        container_config={"local_folder": str(folder)},
        inputs=[Input("a", "number"), Input("b", "number", default_value=2)],
        outputs=[Output("result", "number")],
    )
    assert created["parameters"]["pipeline_name"] == name
    assert created["parameters"]["description"] == "a * b"
    assert created["parameters"]["inputs"] == [
        {"name": "a", "data_type": "number", "is_required": True},
        {"name": "b", "data_type": "number", "is_required": False, "default_value": 2},
    ]
    assert created["creation_info"]["status"] == "ready"
    assert created["creation_info"]["last_execution_id"] is None
    assert sdk.get_pipeline(name)["parameters"]["outputs"] == [{"name": "result", "data_type": "number"}]
    assert name in [p["pipeline_name"] for p in sdk.list_pipelines()]

    assert sdk.delete_pipeline(name) == {"pipeline": {"name": name}, "deployments": []}
    assert name not in [p["pipeline_name"] for p in sdk.list_pipelines()]
    with pytest.raises(SdkException) as info:
        sdk.get_pipeline(name)
    assert info.value.status_code == 404 and name in info.value.message


def test_names_and_duplicates(sdk, tmp_path):
    folder = write_folder(tmp_path, MULTIPLY)
    with pytest.raises(SdkException) as info:
        sdk.create_pipeline("Bad_Name", "main.py", "multiply", container_config={"local_folder": str(folder)})
    assert info.value.status_code == 400 and "pipeline_name" in info.value.message

    name = unique("dup")
    sdk.create_pipeline(name, "main.py", "multiply", container_config={"local_folder": str(folder)})
    with pytest.raises(SdkException) as info:
        sdk.create_pipeline(name, "main.py", "multiply", container_config={"local_folder": str(folder)})
    assert info.value.status_code == 409 and "already exists" in info.value.message
    sdk.delete_pipeline(name)


@pytest.mark.parametrize(
    "function_path, function_name, fragment",
    [
        ("missing.py", "multiply", "function_path 'missing.py' is not a file"),
        ("main.py", "nope", "function_name 'nope' is not defined"),
        ("../main.py", "multiply", "outside the pipeline folder"),
    ],
)
def test_code_is_checked_at_creation(sdk, tmp_path, function_path, function_name, fragment):
    folder = write_folder(tmp_path, MULTIPLY)
    with pytest.raises(SdkException) as info:
        sdk.create_pipeline(unique("bad"), function_path, function_name, container_config={"local_folder": str(folder)})
    assert info.value.status_code == 400 and fragment in info.value.message


def test_a_malicious_archive_is_refused_and_nothing_is_stored(api, sdk, platform):
    name = unique("evil")
    archive = tar_bytes({"main.py": b"def f():\n    return {}\n", "../../escaped.py": b"boom"})
    response = api.post(
        "/pipelines",
        data={"pipeline_name": name, "function_path": "main.py", "function_name": "f"},
        files={"step_file": ("p.tar.gz", archive, "application/gzip")},
    )
    assert response.status_code == 400
    assert "contains '..'" in response.json()["message"]
    assert name not in [p["pipeline_name"] for p in sdk.list_pipelines()]
    assert not (platform.home / "packages" / name).exists()


def test_an_upload_over_the_limit_is_413(api):
    archive = tar_bytes({"main.py": b"def f():\n    return {}\n", "blob.bin": __import__("os").urandom(3_000_000)})
    response = api.post(
        "/pipelines",
        data={"pipeline_name": unique("big"), "function_path": "main.py", "function_name": "f"},
        files={"step_file": ("p.tar.gz", archive, "application/gzip")},
    )
    assert response.status_code == 413
    assert "RAYLINE_MAX_UPLOAD_BYTES" in response.json()["message"]


def test_a_missing_archive_is_a_clear_400(api):
    response = api.post(
        "/pipelines",
        data={"pipeline_name": unique("nofile"), "function_path": "main.py", "function_name": "f"},
        files={"other": ("x", b"x")},
    )
    assert response.status_code == 400 and "step_file is required" in response.json()["message"]
