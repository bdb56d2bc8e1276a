import time
from datetime import UTC, datetime, timedelta

import pytest

from rayline import Input, Output, SdkException
from tests.integration.conftest import unique, write_folder

PROCESS_INFO = {
    "main.py": """
        import logging
        import os
        import sys

        SEEN_BEFORE = os.path.exists("written-by-an-execution.txt")

        def run(a, b=2):
            print(f"multiplying {a} by {b}")
            print("a line on stderr", file=sys.stderr)
            logging.getLogger("user").warning("a warning from logging")
            with open("written-by-an-execution.txt", "w") as handle:
                handle.write("left behind")
            return {"result": a * b, "pid": os.getpid(), "saw_previous_file": SEEN_BEFORE}
    """,
}

OUTPUTS = [Output("result", "number"), Output("pid", "number"), Output("saw_previous_file", "boolean")]


@pytest.fixture
def info_pipeline(sdk, tmp_path):
    name = unique("info")
    sdk.create_pipeline(
        name,
        "main.py",
        "run",
        container_config={"local_folder": str(write_folder(tmp_path, PROCESS_INFO))},
        inputs=[Input("a", "number"), Input("b", "number", default_value=2)],
        outputs=OUTPUTS,
    )
    yield name
    sdk.delete_pipeline(name)


def test_run_records_outputs_logs_and_statuses(sdk, info_pipeline):
    before = datetime.now(UTC)
    result = sdk.run_pipeline(info_pipeline, {"a": 21})
    returned_at = time.monotonic()
    assert result["execution_id"] == f"{info_pipeline}-1"
    assert result["outputs"]["result"] == 42

    # Readable at once, well within 1 s of the result.
    execution = sdk.get_pipeline_execution(result["execution_id"])
    logs = sdk.get_pipeline_execution_logs(result["execution_id"])
    assert time.monotonic() - returned_at < 1.0
    assert execution["status"] == "Succeeded"
    assert execution["pipeline_name"] == info_pipeline and execution["deployment_name"] is None
    created, started, ended = (
        datetime.fromisoformat(execution[k].replace("Z", "+00:00")) for k in ("created_at", "start_date", "end_date")
    )
    assert before - timedelta(seconds=1) <= created <= started <= ended
    assert {i["pipeline_input_name"]: i["value"] for i in execution["inputs"]} == {"a": 21, "b": 2}
    assert {o["pipeline_output_name"]: o["value"] for o in execution["outputs"]}["result"] == 42
    assert execution["inputs"][0]["source"] == "run"

    messages = [(line["stream"], line["message"]) for line in logs]
    assert ("stdout", "multiplying 21 by 2") in messages
    assert ("stderr", "a line on stderr") in messages
    assert any("a warning from logging" in m for _, m in messages)

    latest = sdk.get_pipeline(info_pipeline)["creation_info"]["last_execution_id"]
    assert latest == result["execution_id"]
    listed = sdk.list_pipeline_executions(info_pipeline)
    assert [e["execution_id"] for e in listed] == [result["execution_id"]]


def test_each_run_is_a_fresh_process_with_a_private_directory(sdk, info_pipeline):
    first = sdk.run_pipeline(info_pipeline, {"a": 1})["outputs"]
    second = sdk.run_pipeline(info_pipeline, {"a": 1})["outputs"]
    assert first["pid"] != second["pid"]
    # The file the first execution wrote in its working directory is not there for the second.
    assert first["saw_previous_file"] is False and second["saw_previous_file"] is False


def test_log_bounds_and_limit(sdk, info_pipeline):
    execution_id = sdk.run_pipeline(info_pipeline, {"a": 2})["execution_id"]
    logs = sdk.get_pipeline_execution_logs(execution_id)
    assert len(logs) >= 3
    assert len(sdk.get_pipeline_execution_logs(execution_id, limit=1)) == 1
    future = datetime.now(UTC) + timedelta(hours=1)
    assert sdk.get_pipeline_execution_logs(execution_id, from_datetime=future) == []


@pytest.mark.parametrize(
    "inputs, fragment",
    [
        ({}, "Input 'a' (number) is required"),
        ({"a": "twenty"}, "Input 'a': expected a number"),
        ({"a": 1, "c": 3}, "Unknown input(s) 'c'"),
    ],
)
def test_bad_inputs_are_400_and_leave_no_execution(sdk, info_pipeline, inputs, fragment):
    with pytest.raises(SdkException) as info:
        sdk.run_pipeline(info_pipeline, inputs)
    assert info.value.status_code == 400 and fragment in info.value.message
    assert sdk.list_pipeline_executions(info_pipeline) == []


def test_bad_form_fields_are_400(api, info_pipeline):
    response = api.post(f"/pipelines/{info_pipeline}/run", data={"json_inputs": "{not json"})
    assert response.status_code == 400 and "json_inputs" in response.json()["message"]


def test_user_errors_fail_the_execution_with_the_traceback_in_its_logs(sdk, tmp_path):
    name = unique("fails")
    folder = write_folder(
        tmp_path,
        {
            "main.py": """
        def boom(x):
            print("about to fail")
            raise RuntimeError(f"bad value {x}")
    """
        },
    )
    sdk.create_pipeline(
        name, "main.py", "boom", container_config={"local_folder": str(folder)}, inputs=[Input("x", "string")]
    )
    with pytest.raises(SdkException) as info:
        sdk.run_pipeline(name, {"x": "zz"})
    assert info.value.name == "ExecutionFailed"
    assert "RuntimeError: bad value zz" in info.value.message
    execution_id = info.value.additional_data["execution_id"]
    execution = sdk.get_pipeline_execution(execution_id)
    assert execution["status"] == "Failed" and execution["end_date"]
    text = "\n".join(line["message"] for line in sdk.get_pipeline_execution_logs(execution_id))
    assert "about to fail" in text and "Traceback" in text and 'raise RuntimeError(f"bad value {x}")' in text

    assert sdk.delete_pipeline_execution(execution_id) == {"execution_id": execution_id}
    with pytest.raises(SdkException) as info:
        sdk.get_pipeline_execution(execution_id)
    assert info.value.status_code == 404
    sdk.delete_pipeline(name)


def test_wrong_outputs_fail_the_execution(sdk, tmp_path):
    name = unique("badout")
    folder = write_folder(tmp_path, {"main.py": "def f():\n    return {'y': 'not a number'}\n"})
    sdk.create_pipeline(
        name, "main.py", "f", container_config={"local_folder": str(folder)}, outputs=[Output("y", "number")]
    )
    with pytest.raises(SdkException, match="Output 'y': expected a number"):
        sdk.run_pipeline(name)
    sdk.delete_pipeline(name)


def test_async_functions_and_packages_with_relative_imports(sdk, tmp_path):
    name = unique("asyncpkg")
    folder = write_folder(
        tmp_path,
        {
            "src/__init__.py": "",
            "src/helpers.py": "def double(x):\n    return 2 * x\n",
            "src/main.py": """
            import asyncio
            from .helpers import double

            async def handler(items):
                await asyncio.sleep(0.01)
                return {"doubled": [double(i) for i in items]}
        """,
        },
    )
    sdk.create_pipeline(
        name,
        "src/main.py",
        "handler",
        container_config={"local_folder": str(folder)},
        inputs=[Input("items", "array")],
        outputs=[Output("doubled", "array")],
    )
    assert sdk.run_pipeline(name, {"items": [1, 2]})["outputs"] == {"doubled": [2, 4]}
    sdk.delete_pipeline(name)


def test_requirements_are_installed_in_the_execution_environment(sdk, tmp_path):
    name = unique("reqs")
    folder = write_folder(
        tmp_path,
        {
            "requirements.txt": "pyjokes==0.8.3\n",
            "main.py": """
            import pyjokes

            def joke():
                return {"joke": pyjokes.get_joke(), "module": pyjokes.__file__}
        """,
        },
    )
    sdk.create_pipeline(
        name,
        "main.py",
        "joke",
        container_config={"local_folder": str(folder), "requirements_path": "requirements.txt"},
        outputs=[Output("joke", "string"), Output("module", "string")],
    )
    outputs = sdk.run_pipeline(name)["outputs"]
    assert outputs["joke"]
    assert "runtime_resources" in outputs["module"]  # from Ray's pip environment, not the platform's venv
    sdk.delete_pipeline(name)


def test_a_broken_requirement_is_an_error_not_a_hang(sdk, tmp_path):
    name = unique("badreqs")
    folder = write_folder(
        tmp_path,
        {"requirements.txt": "this-package-does-not-exist-rayline==0.0.1\n", "main.py": "def f():\n    return {}\n"},
    )
    sdk.create_pipeline(
        name, "main.py", "f", container_config={"local_folder": str(folder), "requirements_path": "requirements.txt"}
    )
    with pytest.raises(SdkException) as info:
        sdk.run_pipeline(name)
    execution = sdk.get_pipeline_execution(info.value.additional_data["execution_id"])
    assert execution["status"] == "Error"
    assert "environment could not be set up" in execution["error"]
    sdk.delete_pipeline(name)


def test_a_file_hiding_a_standard_module_is_refused_at_creation(sdk, tmp_path):
    folder = write_folder(tmp_path, {"json.py": "def run():\n    return {}\n"})
    with pytest.raises(SdkException) as info:
        sdk.create_pipeline(unique("stdlibname"), "json.py", "run", container_config={"local_folder": str(folder)})
    assert info.value.status_code == 400 and "'json.py'" in info.value.message and "rename it" in info.value.message


def test_a_long_execution_s_logs_are_readable_while_it_runs(sdk, tmp_path):
    name = unique("long")
    folder = write_folder(
        tmp_path,
        {
            "main.py": """
        import time

        def slow():
            print("first step done", flush=True)
            time.sleep(4)
            print("second step done")
            return {}
    """
        },
    )
    sdk.create_pipeline(name, "main.py", "slow", container_config={"local_folder": str(folder)})
    execution_id = sdk.run_pipeline(name, wait_for_completion=False)["execution_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        messages = [line["message"] for line in sdk.get_pipeline_execution_logs(execution_id)]
        if messages:
            break
        time.sleep(0.2)
    assert messages == ["first step done"]
    assert sdk.get_pipeline_execution(execution_id)["status"] == "Running"
    sdk.retrieve_pipeline_execution_outputs(execution_id)
    messages = [line["message"] for line in sdk.get_pipeline_execution_logs(execution_id)]
    assert messages == ["first step done", "second step done"]
    sdk.delete_pipeline(name)
