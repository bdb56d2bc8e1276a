"""File inputs and outputs over real HTTP: multipart in, application/octet-stream out."""

import httpx
import pytest

from rayline import Input, Output, SdkException
from tests.integration.conftest import unique, write_folder
from tests.integration.test_deployments import readable_within_1s

MODULE = {
    "main.py": """
        import os

        SEEN = []  # the input paths of earlier executions of this process

        def shout(doc, suffix="!"):
            earlier = [os.path.exists(path) for path in SEEN]
            SEEN.append(doc)
            with open(doc) as f:
                text = f.read().upper() + suffix
            with open("shouted.txt", "w") as f:
                f.write(f"{text}|{os.path.basename(doc)}|earlier inputs still there: {any(earlier)}")
            return {"loud": "shouted.txt"}
    """,
}


@pytest.fixture(scope="module")
def pipeline(platform, tmp_path_factory):
    sdk = platform.sdk()
    name = unique("shout")
    folder = write_folder(tmp_path_factory.mktemp("shout"), MODULE)
    sdk.create_pipeline(
        name,
        "main.py",
        "shout",
        container_config={"local_folder": str(folder)},
        inputs=[Input("doc", "file"), Input("suffix", "string", is_required=False)],
        outputs=[Output("loud", "file")],
    )
    yield name
    sdk.delete_pipeline(name, force_deployments_deletion=True)


@pytest.mark.parametrize("mode", ["low_latency", "elastic"])
def test_a_file_round_trips_through_an_endpoint(platform, sdk, pipeline, mode, tmp_path):
    name = unique(f"files-{mode.replace('_', '-')}")
    deployment = sdk.create_deployment(pipeline, name, "endpoint", mode=mode)
    url = f"{platform.url}/endpoints/{deployment['endpoint_url_path']}"
    headers = {"Authorization": f"EndpointToken {deployment['endpoint_token']}"}

    for _ in range(2):  # twice: the first call's temporary input file must be gone by the second
        response = httpx.post(
            url,
            headers=headers,
            files={"doc": ("notes.txt", b"hello")},
            data={"suffix": '"?"'},
            timeout=60,
            follow_redirects=True,
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.content == b"HELLO?|notes.txt|earlier inputs still there: False"
    execution_id = response.headers["x-rayline-execution-id"]
    execution = readable_within_1s(sdk, execution_id, "Succeeded")
    assert execution["inputs"][0]["value"] == {"filename": "notes.txt", "size": 5}
    assert execution["outputs"][0]["value"] == {"filename": "shouted.txt", "size": len(response.content)}
    stored = sdk.retrieve_endpoint_results(name, execution_id, endpoint_token=deployment["endpoint_token"])
    assert stored["outputs"]["loud"] == response.content

    # The SDK sends bytes, files or paths, and returns the file's bytes.
    (tmp_path / "a.txt").write_text("from a path")
    triggered = sdk.trigger_endpoint(name, deployment["endpoint_token"], inputs={"doc": tmp_path / "a.txt"})
    assert triggered["outputs"]["loud"].startswith(b"FROM A PATH!|a.txt|")
    assert sdk.trigger_endpoint(name, inputs={"doc": b"no token"})["outputs"]["loud"].startswith(b"NO TOKEN!")

    too_big = httpx.post(url, headers=headers, files={"doc": ("big.bin", b"x" * 1_200_000)}, timeout=60)
    assert too_big.status_code == 413 and "RAYLINE_MAX_FILE_BYTES" in too_big.json()["message"]
    missing = httpx.post(url, headers=headers, json={}, timeout=60)
    assert missing.status_code == 400 and "'doc' (file) is required" in missing.json()["message"]
    as_json = httpx.post(url, headers=headers, json={"doc": "hello"}, timeout=60)
    assert as_json.status_code == 400 and "multipart/form-data file part" in as_json.json()["message"]
    sdk.delete_deployment(name)


def test_run_pipeline_with_a_file_input_returns_the_file_output(sdk, pipeline, tmp_path):
    (tmp_path / "in.txt").write_text("run me")
    result = sdk.run_pipeline(pipeline, {"doc": str(tmp_path / "in.txt"), "suffix": "."})
    assert result["outputs"]["loud"].startswith(b"RUN ME.|in.txt|")
    with pytest.raises(ValueError, match="is not a file"):
        sdk.run_pipeline(pipeline, {"doc": str(tmp_path / "nope.txt")})


def test_a_file_output_must_be_an_endpoints_only_output(platform, sdk, tmp_path):
    name = unique("two-outputs")
    folder = write_folder(tmp_path, {"main.py": "def f():\n    return {}\n"})
    sdk.create_pipeline(
        name,
        "main.py",
        "f",
        container_config={"local_folder": str(folder)},
        outputs=[Output("report", "file"), Output("count", "number")],
    )
    with pytest.raises(SdkException) as info:
        sdk.create_deployment(name, unique("dep"), "endpoint")
    assert info.value.status_code == 400 and "must be its only output" in info.value.message
    sdk.delete_pipeline(name)
