"""Pipeline metrics, recorded from inside executions (elastic and warm pods) with the published
craft-ai-sdk 0.74.7 client and with RaylineSdk, both created with no arguments: each finds the
platform and its execution's credential in its environment. Read back from the notebook."""

from __future__ import annotations

import json
import math
import warnings

import httpx
import pytest

with warnings.catch_warnings():  # importing the client turns every DeprecationWarning on, for good
    from craft_ai_sdk import CraftAiSdk
    from craft_ai_sdk.exceptions import SdkException as CraftSdkException

from rayline import Input, Output
from rayline.sdk.errors import SdkException
from tests.integration.conftest import folder_pipeline, unique

RECORDER = {
    "main.py": """
        import json
        import os
        import time


        def client(kind):
            if kind == "craft":
                from craft_ai_sdk import CraftAiSdk

                return CraftAiSdk()  # CRAFT_AI_ENVIRONMENT_URL, CRAFT_AI_SDK_TOKEN
            from rayline import RaylineSdk

            return RaylineSdk()  # RAYLINE_ENVIRONMENT_URL, RAYLINE_SDK_TOKEN


        def run(kind="rayline", mode="record", leak_to=""):
            sdk = client(kind)
            report = {}
            if mode == "record":
                assert sdk.record_metric_value("accuracy", 0.5) is True
                sdk.record_metric_value("accuracy", 0.75)  # the last value wins
                sdk.record_list_metric_values("loss", [3.0, 2.0])
                sdk.record_list_metric_values("loss", 1.0)
            elif mode == "many":
                began = time.perf_counter()
                sdk.record_list_metric_values("series", [float(i) for i in range(10_000)])
                report["seconds"] = time.perf_counter() - began
            elif mode == "probe":
                token = os.environ["RAYLINE_SDK_TOKEN"]
                report["token_kind"] = token.split(":")[0]
                report["craft_token_is_it"] = os.environ["CRAFT_AI_SDK_TOKEN"] == token
                with open(leak_to, "w") as handle:  # for the test, outside the records
                    handle.write(token)
                for name, call in (
                    ("list_pipelines", lambda: sdk.list_pipelines()),
                    ("other_execution", lambda: sdk._request(
                        "PUT", "/metrics/single-value/x", json={"value": 1, "execution_id": "someone-else-1"}
                    )),
                ):
                    try:
                        call()
                        report[name] = "allowed"
                    except Exception as error:
                        report[name] = f"{getattr(error, 'status_code', '?')} {error}"
                import httpx

                url = os.environ["RAYLINE_ENVIRONMENT_URL"] + "/api/v1"
                access = httpx.post(url + "/auth/refresh", json={"refresh_token": token}).json()["access_token"]
                listed = httpx.get(url + "/pipelines", headers={"Authorization": "Bearer " + access})
                report["access_token_list_pipelines"] = listed.status_code
                path = "metrics-probe/" + os.environ.get("RAYLINE_EXECUTION_ID", "pod") + ".txt"
                import io

                sdk.upload_data_store_object(io.BytesIO(b"from inside"), path)
                report["data_store_path"] = path
            return {"report": report}
    """,
}

RECORDING_INPUTS = [
    Input("kind", "string", is_required=False),
    Input("mode", "string", is_required=False),
    Input("leak_to", "string", is_required=False),
]


@pytest.fixture(scope="module")
def recorder(platform, tmp_path_factory):
    folder = tmp_path_factory.mktemp("recorder")
    outputs = [Output("report", "json")]
    with folder_pipeline(platform, folder, "metrics", RECORDER, "run", RECORDING_INPUTS, outputs) as name:
        yield name


@pytest.fixture(scope="module")
def craft(platform):
    return CraftAiSdk(sdk_token=platform.token, environment_url=platform.url, control_url=platform.url)


def _by_execution(metrics: list[dict]) -> dict[str, dict]:
    return {metric["execution_id"]: metric for metric in metrics}


def test_elastic_executions_record_metrics_with_either_client(sdk, craft, recorder):
    ids = [sdk.run_pipeline(recorder, {"kind": kind})["execution_id"] for kind in ("craft", "rayline")]
    for client in (sdk, craft):
        values = _by_execution(client.get_metrics(name="accuracy", pipeline_name=recorder))
        lists = _by_execution(client.get_list_metrics(name="loss", pipeline_name=recorder))
        for execution_id in ids:
            assert values[execution_id]["value"] == 0.75, values  # the last one recorded
            assert values[execution_id]["pipeline_name"] == recorder
            assert values[execution_id]["deployment_name"] is None and values[execution_id]["created_at"]
            assert lists[execution_id]["values"] == [3.0, 2.0, 1.0], lists  # in the order recorded
        only = client.get_metrics(execution_id=ids[0])
        assert [(m["name"], m["execution_id"]) for m in only] == [("accuracy", ids[0])]


def test_warm_pod_executions_record_metrics_with_either_client(sdk, craft, recorder):
    name = unique("metrics-pod")
    deployment = sdk.create_deployment(
        recorder, name, "endpoint", mode="low_latency", enable_parallel_executions=True,
        max_parallel_executions_per_pod=2,
    )  # fmt: skip
    token = deployment["endpoint_token"]
    ids = [sdk.trigger_endpoint(name, token, {"kind": kind})["execution_id"] for kind in ("craft", "rayline", "craft")]
    for client in (sdk, craft):
        values = _by_execution(client.get_metrics(deployment_name=name))
        lists = _by_execution(client.get_list_metrics(deployment_name=name))
        assert sorted(values) == sorted(ids) and sorted(lists) == sorted(ids), (values, ids)
        for execution_id in ids:  # each execution's own, though they share a process
            assert values[execution_id]["value"] == 0.75 and values[execution_id]["deployment_name"] == name
            assert lists[execution_id]["values"] == [3.0, 2.0, 1.0]
    sdk.delete_deployment(name)


def test_ten_thousand_list_values_from_an_execution(sdk, recorder):
    execution_id = sdk.run_pipeline(recorder, {"mode": "many"})["execution_id"]
    [series] = sdk.get_list_metrics(name="series", execution_id=execution_id)
    assert series["values"] == [float(i) for i in range(10_000)]


def test_recording_outside_an_execution_returns_false_with_a_warning(sdk, craft):
    for client in (sdk, craft):
        with pytest.warns(UserWarning, match="outside"):
            assert client.record_metric_value("accuracy", 1.0) is False
        with pytest.warns(UserWarning, match="outside"):
            assert client.record_list_metric_values("loss", [1.0]) is False


def test_an_executions_code_gets_its_own_credential_only_and_loses_it_when_it_ends(platform, sdk, recorder, tmp_path):
    leak = tmp_path / "token"
    result = sdk.run_pipeline(recorder, {"mode": "probe", "leak_to": str(leak)})
    report, execution_id = result["outputs"]["report"], result["execution_id"]
    credential = leak.read_text()
    assert credential != platform.token and report["token_kind"] == "execution" and report["craft_token_is_it"]
    assert report["list_pipelines"].startswith("401") and "metrics" in report["list_pipelines"], report
    assert report["other_execution"].startswith("403"), report
    assert report["access_token_list_pipelines"] == 401, report  # an access token keeps the scope
    # The data store works from inside the execution.
    assert sdk.get_data_store_object_information(report["data_store_path"])["size"] == len(b"from inside")
    # It never appears in the execution's record or logs.
    record = sdk.get_pipeline_execution(execution_id)
    assert credential not in repr(record) and credential not in repr(sdk.get_pipeline_execution_logs(execution_id))
    # Now that the execution has ended, its credential no longer works, nor gets an access token.
    with httpx.Client(base_url=f"{platform.url}/api/v1", timeout=30) as bare:
        headers = {"Authorization": f"Bearer {credential}"}
        answer = bare.put(
            "/metrics/single-value/late", json={"value": 1, "execution_id": execution_id}, headers=headers
        )
        assert answer.status_code == 401 and "ended" in answer.json()["message"], answer.text
        answer = bare.post("/data-store/download", json={"path_to_object": report["data_store_path"]}, headers=headers)
        assert answer.status_code == 401, answer.text
        answer = bare.post("/auth/refresh", json={"refresh_token": credential})
        assert answer.status_code == 401 and "ended" in answer.json()["message"], answer.text
        tampered = credential[:-1] + ("0" if credential[-1] != "0" else "1")
        answer = bare.post("/auth/refresh", json={"refresh_token": tampered})
        assert answer.status_code == 401, answer.text


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("accuracy", {"value": math.nan, "execution_id": "x-1"}, "finite"),
        ("accuracy", {"value": math.inf, "execution_id": "x-1"}, "finite"),
        ("accuracy", {"value": "0.5", "execution_id": "x-1"}, "value must be a number"),
        ("accuracy", {"value": True, "execution_id": "x-1"}, "value must be a number"),
        ("bad name!", {"value": 1, "execution_id": "x-1"}, "not a valid metric name"),
        ("accuracy", {"execution_id": "x-1"}, "'value'"),
    ],
)
def test_bad_metric_values_and_names_are_refused(api, recorder, name, body, field):
    answer = api.put(
        f"/metrics/single-value/{name}",
        content=json.dumps(body),  # NaN and Infinity as Python's json writes them (httpx refuses to)
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400 and field in answer.json()["message"], answer.text


def test_bad_list_values_and_filters_are_refused(api, sdk, craft):
    answer = api.post("/metrics/list-values/loss", json={"values": [1.0, "x"], "execution_id": "x-1"})
    assert answer.status_code == 400 and "values[1]" in answer.json()["message"], answer.text
    answer = api.post("/metrics/list-values/loss", json={"values": [0.0] * 10_001, "execution_id": "x-1"})
    assert answer.status_code == 400 and "10000" in answer.json()["message"], answer.text
    answer = api.get("/metrics/single-value", params={"filters[pipeline_name]": "a", "filters[execution_id]": "b"})
    assert answer.status_code == 400 and "execution_id, pipeline_name" in answer.json()["message"], answer.text
    with pytest.raises(CraftSdkException, match="at most"):
        craft.get_metrics(pipeline_name="a", deployment_name="b")
    with pytest.raises(ValueError, match="one of"):
        sdk.get_list_metrics(pipeline_name="a", execution_id="b")
    with pytest.raises(SdkException, match="does not exist"):  # the SDK token records only for real executions
        sdk._request("PUT", "/metrics/single-value/x", json={"value": 1, "execution_id": "nobody-1"})
