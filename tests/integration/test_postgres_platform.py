"""The whole platform on PostgreSQL, as on Kubernetes: every component (control plane, warm pods,
elastic workers) uses it, and Ray fetches pipeline packages from the control plane over HTTP
(``RAYLINE_PACKAGE_URL_BASE``) with a token that opens nothing else."""

import secrets

import httpx
import pytest
from sqlalchemy import create_engine, text

from rayline import Input, Output
from rayline.local_platform import LocalPlatform
from tests.integration.conftest import write_folder


@pytest.fixture(scope="module")
def on_postgres(postgres_server, tmp_path_factory):
    url = postgres_server.new_database()
    package_token = secrets.token_urlsafe(32)
    instance = LocalPlatform(
        tmp_path_factory.mktemp("pg-home"),
        extra_env={
            "RAYLINE_DATABASE_URL": url,
            "RAYLINE_PACKAGE_TOKEN": package_token,
            "RAY_RUNTIME_ENV_BEARER_TOKEN": package_token,
        },
    )
    instance.env["RAYLINE_PACKAGE_URL_BASE"] = instance.url  # its own URL, as nodes would reach it
    instance.start()
    yield instance, url, package_token
    assert instance.stop() == []


def test_pipelines_executions_and_warm_pods_run_on_postgresql(on_postgres, tmp_path):
    platform, url, package_token = on_postgres
    sdk = platform.sdk()
    folder = write_folder(tmp_path, {"main.py": "print('imported')\n\ndef add(x):\n    return {'y': x + 1}\n"})
    sdk.create_pipeline(
        "adder",
        "main.py",
        "add",
        container_config={"local_folder": str(folder)},
        inputs=[Input("x", "number")],
        outputs=[Output("y", "number")],
    )
    pipeline = sdk.get_pipeline("adder")
    assert sdk.run_pipeline("adder", {"x": 1})["outputs"] == {"y": 2}  # an elastic worker fetched it over HTTP
    warm = sdk.create_deployment("adder", "adder-warm", "endpoint", mode="low_latency")
    response = httpx.post(
        f"{platform.url}/endpoints/adder-warm",
        json={"x": 41},
        headers={"Authorization": f"EndpointToken {warm['endpoint_token']}"},
    )
    assert response.status_code == 200 and response.json()["output"] == {"y": 42}
    sdk.create_or_update_environment_variable("RLTEST_ON_PG", "yes")  # the warm pod confirms it through PG

    engine = create_engine(url)
    with engine.connect() as connection:
        statuses = dict(connection.execute(text("SELECT execution_id, status FROM executions")).all())
        package = connection.execute(text("SELECT sha256 FROM packages")).scalar_one()
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert statuses["adder-1"] == "Succeeded" and revision
    assert pipeline["parameters"]["function_name"] == "add"

    package_url = f"{platform.url}/api/v1/packages/{package}.zip"
    assert httpx.get(package_url).status_code == 401
    fetched = httpx.get(package_url, headers={"Authorization": f"Bearer {package_token}"})
    assert fetched.status_code == 200 and fetched.content[:2] == b"PK"
    # The package token opens packages only.
    assert (
        httpx.get(f"{platform.url}/api/v1/pipelines", headers={"Authorization": f"Bearer {package_token}"}).status_code
        == 401
    )
    sdk.delete_environment_variable("RLTEST_ON_PG")
    sdk.delete_pipeline("adder", force_deployments_deletion=True)
