"""Periodic deployments on a real platform: an every-minute schedule in each mode, waited for once
(about a minute); schedule changes, disabling and bad schedules. Exactly-once with racing
schedulers is in tests/unit/test_schedules.py (several engines and processes on one database)."""

import time

import pytest

from rayline import Input, InputSource, Output, OutputDestination, SdkException
from tests.integration.conftest import unique, write_folder

MODULE = {
    "main.py": """
        import os

        IMPORTED_IN = os.getpid()  # a warm pod imports once: every execution sees the same

        def tick(label):
            print(f"tick {label} in {IMPORTED_IN}")
            return {"label": label}
    """,
}


@pytest.fixture(scope="module")
def pipeline(platform, tmp_path_factory):
    sdk = platform.sdk()
    name = unique("ticker")
    folder = write_folder(tmp_path_factory.mktemp("ticker"), MODULE)
    sdk.create_pipeline(
        name,
        "main.py",
        "tick",
        container_config={"local_folder": str(folder)},
        inputs=[Input("label", "string")],
        outputs=[Output("label", "string")],
    )
    yield name
    sdk.delete_pipeline(name, force_deployments_deletion=True)


def periodic(sdk, pipeline, name, mode, schedule="* * * * *"):
    return sdk.create_deployment(
        pipeline,
        name,
        "periodic",
        mode=mode,
        schedule=schedule,
        inputs_mapping=[InputSource("label", constant_value=name)],
        outputs_mapping=[OutputDestination("label", is_null=True)],
    )


@pytest.mark.periodic
def test_every_minute_in_each_mode_runs_once_per_due_time(platform, sdk, pipeline):
    names = {mode: unique(f"every-minute-{mode.replace('_', '-')}") for mode in ("elastic", "low_latency")}
    created_at = time.time()
    for mode, name in names.items():
        deployment = periodic(sdk, pipeline, name, mode)
        assert deployment["status"] == "up" and deployment["schedule"] == "* * * * *"
        assert deployment["human_readable_schedule"] == "Every minute"
        assert "endpoint_token" not in deployment or deployment["endpoint_token"] is None

    found: dict[str, dict] = {}
    deadline = time.monotonic() + 75  # the next minute, plus start-up
    while len(found) < 2 and time.monotonic() < deadline:
        for mode, name in names.items():
            done = [
                e
                for e in sdk.list_pipeline_executions(pipeline)
                if e["deployment_name"] == name and e["status"] == "Succeeded"
            ]
            if done:
                found[mode] = done[0]
        time.sleep(1)
    assert set(found) == set(names), f"no Succeeded execution within 75 s: {found}"

    for mode, name in names.items():
        execution = sdk.get_pipeline_execution(found[mode]["execution_id"])
        assert execution["execution_id"].startswith(f"{name}-")
        assert [(i["source"], i["value"]) for i in execution["inputs"]] == [("constant", name)]
        logs = [line["message"] for line in sdk.get_pipeline_execution_logs(execution["execution_id"])]
        assert any(line.startswith(f"tick {name} in ") for line in logs), logs
        # One execution per due time: at most one per minute since creation (and no burst).
        ran = [e for e in sdk.list_pipeline_executions(pipeline) if e["deployment_name"] == name]
        assert len(ran) <= 1 + (time.time() - created_at) // 60, ran
    warm = sdk.get_deployment_logs(names["low_latency"])
    assert any("Module imported" in line["message"] for line in warm)  # its pod's own log

    # A new schedule counts from its next due time; disabling stops it; deleting ends it.
    name = names["elastic"]
    changed = sdk.update_deployment(name, schedule="0 0 1 1 *")
    assert changed["schedule"] == "0 0 1 1 *" and changed["human_readable_schedule"].startswith("At 00:00")
    assert changed["next_run_at"].startswith(f"{time.gmtime().tm_year + 1}-01-01T00:00:00")
    disabled = sdk.update_deployment(name, is_enabled=False)
    assert disabled["is_enabled"] is False and disabled["status"] == "disabled" and disabled["next_run_at"] is None
    for name in names.values():
        sdk.delete_deployment(name)


def test_bad_periodic_deployments_are_refused_with_the_reason(sdk, pipeline):
    name = unique("bad-periodic")
    for kwargs, fragment in (
        ({"schedule": "61 * * * *"}, "out of range"),
        ({"schedule": "* * * *"}, "expected 5 fields, got 4"),
        ({"schedule": None}, "schedule is required"),
        ({"schedule": "* * * * *", "inputs_mapping": []}, "unmapped: 'label'"),
    ):
        mapping = kwargs.pop("inputs_mapping", [InputSource("label", constant_value="x")])
        with pytest.raises(SdkException) as info:
            sdk.create_deployment(
                pipeline,
                name,
                "periodic",
                inputs_mapping=mapping,
                outputs_mapping=[OutputDestination("label", is_null=True)],
                **kwargs,
            )
        assert info.value.status_code == 400 and fragment in info.value.message, info.value.message
    deployment = periodic(sdk, pipeline, name, "elastic", schedule="0 * * * *")
    with pytest.raises(SdkException) as info:
        sdk.update_deployment(name, schedule="every hour")
    assert info.value.status_code == 400 and "schedule" in info.value.message
    assert sdk.get_deployment(name)["schedule"] == deployment["schedule"] == "0 * * * *"  # unchanged
    with pytest.raises(SdkException) as info:
        sdk.trigger_endpoint(name)
    assert info.value.status_code == 400 and "periodic" in info.value.message
    sdk.delete_deployment(name)
