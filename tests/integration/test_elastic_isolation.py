"""Elastic executions are forked from a clean template (``rayline.runtime.forks``): each one a
process that never ran another, whatever the one before it did, crashed or left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from rayline import Input, Output, SdkException
from tests.integration.conftest import unique, write_folder
from tests.support import wait_until

LEAKY = {
    "main.py": """
        import os
        import sys

        CALLS = 0

        def run(mode="report"):
            global CALLS
            CALLS += 1
            seen = {
                "calls": CALLS,
                "helper_imported": "helper" in sys.modules,
                "file_left": os.path.exists("left-behind.txt"),
                "environment_left": os.environ.get("LEFT_BY_AN_EXECUTION"),
                "pid": os.getpid(),
                "cwd": os.getcwd(),
            }
            import helper  # a module of the package, imported by every execution

            helper.STATE.append(1)
            os.environ["LEFT_BY_AN_EXECUTION"] = "leaked"
            with open("left-behind.txt", "w") as handle:
                handle.write("x")
            print("printed before", mode, flush=True)
            if mode == "segfault":
                import ctypes

                ctypes.string_at(0)
            if mode == "exit":
                os._exit(3)
            if mode == "descriptors":
                os.system("echo from a shell")
                os.write(1, b"written to fd 1\\n")
                os.write(2, b"written to fd 2\\n")
            return {"report": seen}
    """,
    "helper.py": "STATE = []\n",
}

SLEEPER = {
    "main.py": """
        import subprocess
        import time

        def run():
            child = subprocess.Popen(["sleep", "1000"])
            grandchild = subprocess.Popen(["sh", "-c", "sleep 1000 & echo $!; wait"], stdout=subprocess.PIPE)
            print("started", child.pid, int(grandchild.stdout.readline()), flush=True)
            time.sleep(1000)
    """,
}


@pytest.fixture
def leaky(sdk, tmp_path):
    name = unique("leaky")
    sdk.create_pipeline(
        name,
        "main.py",
        "run",
        container_config={"local_folder": str(write_folder(tmp_path, LEAKY))},
        inputs=[Input("mode", "string", is_required=False)],
        outputs=[Output("report", "json")],
    )
    yield name
    sdk.delete_pipeline(name)


def _logs(sdk, execution_id: str) -> list[tuple[str, str]]:
    return [(line["stream"], line["message"]) for line in sdk.get_pipeline_execution_logs(execution_id)]


def test_nothing_of_an_execution_is_seen_by_the_next(sdk, leaky):
    reports = [sdk.run_pipeline(leaky, {"mode": "report"})["outputs"]["report"] for _ in range(4)]
    for report in reports:
        # Globals, imported modules, files in the working directory, environment variables:
        # none of what the execution before left behind.
        assert report["calls"] == 1 and report["helper_imported"] is False, reports
        assert report["file_left"] is False and report["environment_left"] is None, reports
    assert len({r["pid"] for r in reports}) == 4 and len({r["cwd"] for r in reports}) == 4, reports


def test_a_crashed_execution_is_an_error_with_its_logs_and_the_next_one_runs(sdk, leaky):
    for mode, cause in (("segfault", "SIGSEGV (a segmentation fault)"), ("exit", "exited with code 3")):
        with pytest.raises(SdkException) as info:
            sdk.run_pipeline(leaky, {"mode": mode})
        execution_id = info.value.additional_data["execution_id"]
        execution = sdk.get_pipeline_execution(execution_id)
        assert execution["status"] == "Error" and cause in execution["error"], execution
        logs = _logs(sdk, execution_id)
        assert ("stdout", f"printed before {mode}") in logs  # what it printed before it died
        assert logs[-1][0] == "stderr" and cause in logs[-1][1], logs
        report = sdk.run_pipeline(leaky, {"mode": "report"})["outputs"]["report"]
        assert report["calls"] == 1 and report["helper_imported"] is False


def test_what_subprocesses_and_native_code_write_is_in_the_logs(sdk, leaky):
    result = sdk.run_pipeline(leaky, {"mode": "descriptors"})
    logs = _logs(sdk, result["execution_id"])
    for line in (("stdout", "printed before descriptors"), ("stdout", "from a shell"), ("stdout", "written to fd 1")):
        assert line in logs, logs
    assert ("stderr", "written to fd 2") in logs, logs


def test_an_import_failure_fails_the_execution_and_does_not_poison_the_next(sdk, tmp_path):
    name = unique("importfails")
    folder = write_folder(
        tmp_path,
        {
            "main.py": """
                import os

                if os.environ.get("BREAK_THE_IMPORT"):
                    raise RuntimeError("broken at import")

                def run():
                    return {"ok": True}
            """
        },
    )
    sdk.create_pipeline(
        name, "main.py", "run", container_config={"local_folder": str(folder)}, outputs=[Output("ok", "boolean")]
    )
    try:
        sdk.create_or_update_environment_variable("BREAK_THE_IMPORT", "1")
        try:
            with pytest.raises(SdkException) as info:
                sdk.run_pipeline(name)
            assert info.value.name == "ExecutionFailed" and "broken at import" in info.value.message
            logs = "\n".join(m for _, m in _logs(sdk, info.value.additional_data["execution_id"]))
            assert "Traceback" in logs and "RuntimeError: broken at import" in logs
        finally:
            sdk.delete_environment_variable("BREAK_THE_IMPORT")
        assert sdk.run_pipeline(name)["outputs"] == {"ok": True}  # same environment, same template
    finally:
        sdk.delete_pipeline(name)


def _process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1].startswith("Z")  # a zombie: killed, not yet reaped
    except FileNotFoundError:
        return True


def _ray_task(platform, name: str) -> list[dict]:
    """The Ray tasks named ``name``, from Ray's state API (a driver in a process of its own)."""
    code = (
        "import json, sys, ray; from ray.util.state import list_tasks; "
        "ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR'); "
        "tasks = list_tasks(address=sys.argv[1], filters=[('name', '=', sys.argv[2])], detail=True); "
        "print(json.dumps([{'state': t.state, 'resources': t.required_resources} for t in tasks]))"
    )
    environment = {**os.environ, "RAY_AUTH_MODE": "token"}
    done = subprocess.run(
        [sys.executable, "-c", code, platform.ray_address, name],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_timeout_stops_the_process_group_and_the_running_execution_holds_a_cpu(platform, sdk, tmp_path):
    pipeline, name = unique("sleeper"), unique("sleeper-dep")
    sdk.create_pipeline(
        pipeline, "main.py", "run", container_config={"local_folder": str(write_folder(tmp_path, SLEEPER))}
    )
    sdk.create_deployment(pipeline, name, "endpoint", mode="elastic", execution_timeout_s=6)
    try:
        began = time.monotonic()
        execution_id = sdk.trigger_endpoint(name, wait_for_completion=False)["execution_id"]

        def started() -> list[int]:
            lines = [m for _, m in _logs(sdk, execution_id) if m.startswith("started ")]
            return [int(pid) for pid in lines[0].split()[1:]] if lines else []

        pids = wait_until(started, 10, "the execution's processes started")  # its logs stream while it runs
        # While it runs, its Ray task holds one CPU in Ray's scheduler.
        tasks = _ray_task(platform, f"rayline-execution:{execution_id}")
        assert [t["state"] for t in tasks] == ["RUNNING"] and tasks[0]["resources"].get("CPU") == 1.0, tasks
        wait_until(lambda: sdk.get_pipeline_execution(execution_id)["status"] == "Failed", 30, "the timeout")
        assert time.monotonic() - began < 30
        execution = sdk.get_pipeline_execution(execution_id)
        assert "execution_timeout_s=6" in execution["error"] and "every process it started" in execution["error"]
        assert wait_until(lambda: all(_process_gone(pid) for pid in pids), 5, f"{pids} stopped")
        assert ("stdout", f"started {pids[0]} {pids[1]}") in _logs(sdk, execution_id)
    finally:
        sdk.delete_deployment(name)
        sdk.delete_pipeline(pipeline)
