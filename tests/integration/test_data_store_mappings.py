"""``datastore_path`` in input and output mappings: a file input read from the data store when an
execution starts, a file output written to it when it ends, in both modes; the execution's record
says where each came from and went."""

from __future__ import annotations

import io

import pytest

from rayline import Input, InputSource, Output, OutputDestination, SdkException
from tests.integration.conftest import folder_pipeline, unique

SHOUTER = {
    "main.py": """
        def run(source, suffix="!"):
            with open(source) as handle:
                text = handle.read()
            with open("shouted.txt", "w") as handle:
                handle.write(text.upper() + suffix)
            return {"shouted": "shouted.txt"}
    """,
}


@pytest.fixture(scope="module")
def shouter(platform, tmp_path_factory):
    inputs = [Input("source", "file"), Input("suffix", "string", is_required=False)]
    folder = tmp_path_factory.mktemp("shouter")
    with folder_pipeline(platform, folder, "shouter", SHOUTER, "run", inputs, [Output("shouted", "file")]) as name:
        yield name


def _read(sdk, path: str) -> bytes:
    buffer = io.BytesIO()
    sdk.download_data_store_object(path, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["elastic", "low_latency"])
def test_a_file_input_comes_from_the_data_store_and_the_file_output_goes_to_it(sdk, shouter, mode):
    name = unique(f"shout-{mode.replace('_', '-')}")
    source, target = f"mappings/{name}/in.txt", f"mappings/{name}/out/shouted.txt"
    sdk.upload_data_store_object(io.BytesIO(b"hello data store"), source)
    deployment = sdk.create_deployment(
        shouter,
        name,
        "endpoint",
        mode=mode,
        inputs_mapping=[InputSource("source", datastore_path=source)],
        outputs_mapping=[OutputDestination("shouted", datastore_path=target)],
    )
    answer = sdk.trigger_endpoint(name, deployment["endpoint_token"], {"suffix": "?"})
    assert _read(sdk, target) == b"HELLO DATA STORE?"
    execution = sdk.get_pipeline_execution(answer["execution_id"])
    assert execution["status"] == "Succeeded", execution
    [source_record] = [i for i in execution["inputs"] if i["pipeline_input_name"] == "source"]
    # As craft-ai-sdk shows it: the kind of source or destination, and its path.
    assert source_record["source"] == "datastore" and source_record["datastore_path"] == source, source_record
    [output_record] = execution["outputs"]
    assert output_record["destination"] == "datastore" and output_record["datastore_path"] == target
    assert output_record["value"]["size"] == len(b"HELLO DATA STORE?")
    # A second call replaces the object; a missing source fails the execution, naming the input.
    sdk.upload_data_store_object(io.BytesIO(b"again"), source)
    sdk.trigger_endpoint(name, deployment["endpoint_token"])
    assert _read(sdk, target) == b"AGAIN!"
    sdk.delete_data_store_object(source)
    with pytest.raises(SdkException) as info:
        sdk.trigger_endpoint(name, deployment["endpoint_token"])
    assert "Input 'source'" in info.value.message and source in info.value.message, info.value.message
    assert _read(sdk, target) == b"AGAIN!"  # what it wrote before is intact
    sdk.delete_deployment(name)


@pytest.mark.parametrize(
    ("inputs_mapping", "outputs_mapping", "fragment"),
    [
        ([InputSource("source", datastore_path="../etc/passwd")], None, "datastore_path"),
        ([InputSource("source", datastore_path="/abs")], None, "datastore_path"),
        ([InputSource("suffix", datastore_path="a.txt")], None, "maps a file input"),
        (None, [OutputDestination("shouted", datastore_path="a//b")], "datastore_path"),
    ],
)
def test_bad_data_store_mappings_are_refused_and_nothing_is_created(
    sdk, shouter, inputs_mapping, outputs_mapping, fragment
):
    name = unique("bad-ds-map")
    with pytest.raises(SdkException) as info:
        sdk.create_deployment(shouter, name, "endpoint", inputs_mapping=inputs_mapping, outputs_mapping=outputs_mapping)
    assert info.value.status_code == 400 and fragment in info.value.message, info.value.message
    assert name not in [d["name"] for d in sdk.list_deployments()]


def test_run_pipeline_reads_and_writes_the_data_store_too(sdk, shouter):
    source, target = f"mappings/{unique('run')}/in.txt", f"mappings/{unique('run')}/out.txt"
    sdk.upload_data_store_object(io.BytesIO(b"run me"), source)
    result = sdk.run_pipeline(
        shouter,
        {"suffix": "."},
        inputs_mapping=[InputSource("source", datastore_path=source)],
        outputs_mapping=[OutputDestination("shouted", datastore_path=target)],
    )
    # It went to the data store: the caller gets its description, as craft-ai-sdk shows it.
    assert result["outputs"] == {"shouted": {"filename": "shouted.txt", "size": len(b"RUN ME.")}}
    assert _read(sdk, target) == b"RUN ME."
    # Larger than a file input may be (the session's RAYLINE_MAX_FILE_BYTES): refused from its size.
    sdk.upload_data_store_object(io.BytesIO(b"x" * 1_500_000), source)
    with pytest.raises(SdkException) as info:
        sdk.run_pipeline(
            shouter, inputs_mapping=[InputSource("source", datastore_path=source)],
            outputs_mapping=[OutputDestination("shouted", datastore_path=target)],
        )  # fmt: skip
    assert "is 1500000 bytes" in info.value.message and "RAYLINE_MAX_FILE_BYTES" in info.value.message
    assert _read(sdk, target) == b"RUN ME."  # nothing written
