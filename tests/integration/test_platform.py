import sqlite3
import stat

import httpx

from rayline import Input, Output
from rayline.domain.tokens import hash_token
from tests.integration.conftest import unique, write_folder


def test_health_needs_no_token_and_docs_are_served(platform):
    assert httpx.get(f"{platform.url}/api/v1/health").json() == {"status": "ok"}
    assert httpx.get(f"{platform.url}/api/v1/docs").status_code == 200
    paths = httpx.get(f"{platform.url}/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/pipelines/{pipeline_name}/run" in paths


def test_every_other_route_needs_the_sdk_token(platform):
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": platform.token}):
        response = httpx.get(f"{platform.url}/api/v1/pipelines", headers=headers)
        assert response.status_code == 401
        assert "SDK token" in response.json()["message"]
    response = httpx.post(f"{platform.url}/api/v1/pipelines/x/run", data={"json_inputs": "{}"})
    assert response.status_code == 401


def test_the_token_file_is_private_and_only_its_hash_is_stored(platform):
    token_file = platform.home / "sdk-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with sqlite3.connect(platform.home / "rayline.db") as connection:
        stored = connection.execute("SELECT token_hash FROM credentials WHERE name = 'sdk'").fetchone()[0]
    assert stored == hash_token(platform.token)
    for suffix in ("", "-wal"):
        path = platform.home / f"rayline.db{suffix}"
        if path.exists():
            assert platform.token.encode() not in path.read_bytes()


def test_unknown_routes_answer_json(api):
    response = api.get("/no-such-thing")
    assert response.status_code == 404 and "message" in response.json()


def test_state_survives_a_restart_and_stopping_leaves_no_process(platform, tmp_path):
    sdk = platform.sdk()
    name = unique("survivor")
    folder = write_folder(tmp_path, {"main.py": "def f(x):\n    return {'y': x + 1}\n"})
    sdk.create_pipeline(
        name,
        "main.py",
        "f",
        container_config={"local_folder": str(folder)},
        inputs=[Input("x", "number")],
        outputs=[Output("y", "number")],
    )
    execution_id = sdk.run_pipeline(name, {"x": 1})["execution_id"]
    deployment = sdk.create_deployment(name, f"{name}-warm", "endpoint", mode="low_latency")
    token = platform.token

    platform.restart()  # SIGTERM, check that nothing it started is left, start again on the same home

    assert platform.token == token
    sdk = platform.sdk()
    assert name in [p["pipeline_name"] for p in sdk.list_pipelines()]
    assert sdk.get_pipeline_execution(execution_id)["status"] == "Succeeded"
    # Counters survive too: no execution id is ever reused.
    assert sdk.run_pipeline(name, {"x": 2}) == {"execution_id": f"{name}-2", "outputs": {"y": 3}}
    # The low-latency deployment is running again without anyone asking, with the same token.
    back = sdk.get_deployment(f"{name}-warm", wait_for_completion=True, timeout_s=120)
    assert back["status"] == "up" and back["endpoint_token"] == deployment["endpoint_token"]
    response = httpx.post(
        f"{platform.url}/endpoints/{name}-warm",
        json={"x": 41},
        headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"},
    )
    assert response.status_code == 200 and response.json()["output"] == {"y": 42}
    sdk.delete_pipeline(name, force_deployments_deletion=True)


def test_log_bounds_out_of_range_are_a_400_naming_the_field(api):
    # Found by fuzzing: an epoch in milliseconds past the year 9999 was a 500 (OverflowError).
    for route in ("/executions/nope-1/logs", "/deployments/nope/logs"):
        for body, field in (
            ({"from": 660666892523676062711808}, "from"),
            ({"to": 10**20}, "to"),
            ({"from": -1}, "from"),
            ({"limit": 0}, "limit"),
            ({"limit": 10**9}, "limit"),
        ):
            response = api.post(route, json=body)
            assert response.status_code == 400, (route, body, response.text)
            assert response.json()["message"].startswith(f"Invalid request: {field}:"), response.json()
