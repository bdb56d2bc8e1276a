"""User code gets none of the platform's secrets, and each route takes only its own credentials.

A platform started as an operator would, with every secret set (a chosen SDK token, a database
URL, a package token given to Ray's nodes), runs a pipeline that looks for them where user code
can look: its environment, the files it can find (its folder, the files its process has open),
everything its process holds in memory that Python's garbage collector reaches (Serve's
constructor arguments of its replica among them) and Ray's GCS key-value store (where Serve
keeps every application's and replica's arguments). In both modes, it must find none of them,
while it does find canaries put in each of those places, so that the search itself is proven.
"""

from __future__ import annotations

import base64
import json
import secrets

import httpx
import pytest

from rayline import Input, Output
from tests.integration.conftest import Platform, unique, write_folder

SCANNER = {
    "main.py": """
        import base64
        import gc
        import os
        import pathlib


        class Holder:  # an object holding a string, as Serve's arguments of a replica do
            pass


        HELD = Holder()
        HELD.value = "MEMORY-CANARY-{canary}"


        def scan(needles):
            # The secrets arrive reversed and encoded, so that this search does not find itself.
            wanted = [base64.b64decode(n)[::-1] for n in needles]
            found = set()

            def check(where, blob):
                if isinstance(blob, str):
                    blob = blob.encode(errors="ignore")
                for index, secret in enumerate(wanted):
                    if secret in blob:
                        found.add(f"{index}:{where}")

            for name, value in os.environ.items():
                check("env", f"{name}={value}")
            files = {p for p in pathlib.Path.cwd().rglob("*") if p.is_file()}
            for fd in os.listdir("/proc/self/fd"):
                try:
                    target = pathlib.Path(os.readlink(f"/proc/self/fd/{fd}"))
                except OSError:
                    continue
                if target.is_file():
                    files.add(target)
            for home in {os.environ.get("RAYLINE_HOME"), os.environ.get("HOME_OF_PLATFORM")} - {None}:
                files |= {p for p in pathlib.Path(home).rglob("*") if p.is_file()}
            for path in files:
                try:
                    check("file", path.read_bytes()[:10_000_000])
                except OSError:
                    pass
            # Objects' attributes and dicts' values, one level into the containers they hold
            # (CPython does not track a dict of strings, such as os.environ's, by itself).
            gc.unfreeze()  # a Serve replica freezes what it holds after start-up: hidden from get_objects
            for obj in gc.get_objects():
                try:
                    values = list(obj.values() if isinstance(obj, dict) else vars(obj).values())
                except Exception:
                    continue
                for value in values:
                    inner = (list(value.values()) if isinstance(value, dict)
                             else list(value) if isinstance(value, (list, tuple)) else [value])
                    for item in inner:
                        if isinstance(item, (str, bytes)) and len(item) < 1_000_000:
                            check("memory", item)
            from ray.experimental import internal_kv

            for namespace in (None, "serve", "fun", "job", "session", "dashboard", "cluster"):
                try:
                    keys = internal_kv._internal_kv_list(b"", namespace=namespace)
                except Exception:
                    continue
                for key in keys:
                    check("gcs", internal_kv._internal_kv_get(key, namespace=namespace) or b"")
            return {"found": sorted(found)}
    """,
    "canary.txt": "FILE-CANARY-{canary}",
}


def encode(values: list[str]) -> list[str]:
    return [base64.b64encode(value.encode()[::-1]).decode() for value in values]


@pytest.fixture(scope="module")
def guarded_platform(tmp_path_factory):
    """A platform of its own, with every secret set through the environment of `rayline up`."""
    home = tmp_path_factory.mktemp("rayline-secrets")
    database_url = f"sqlite:///{home / ('state-' + secrets.token_hex(8) + '.db')}"
    package_token = "pkg-" + secrets.token_hex(16)
    instance = Platform(
        home,
        extra_env={
            "RAYLINE_SDK_TOKEN": "sdk-" + secrets.token_hex(16),
            "RAYLINE_DATABASE_URL": database_url,
            "RAYLINE_PACKAGE_TOKEN": package_token,
            "RAY_RUNTIME_ENV_BEARER_TOKEN": package_token,
        },
    )
    instance.env["RAYLINE_PACKAGE_URL_BASE"] = instance.url  # packages downloaded over HTTP, as on a cluster
    instance.start()
    yield (
        instance,
        {
            "sdk token": instance.env["RAYLINE_SDK_TOKEN"],
            "database URL": database_url,
            "package token": package_token,
            "secret key": (home / "secret-key").read_text().strip(),
        },
    )
    left = instance.stop()
    assert left == [], f"processes left after stopping: {left}"


def test_user_code_finds_no_secret_in_either_mode(guarded_platform, tmp_path):
    platform, platform_secrets = guarded_platform
    canary = secrets.token_hex(8)
    names = list(platform_secrets)
    needles = [platform_secrets[name] for name in names] + [
        f"ENV-CANARY-{canary}",
        f"FILE-CANARY-{canary}",
        f"MEMORY-CANARY-{canary}",
    ]
    files = {name: text.replace("{canary}", canary) for name, text in SCANNER.items()}
    folder = write_folder(tmp_path / "scanner", files)
    with platform.sdk() as sdk:
        sdk.create_or_update_environment_variable("SCAN_CANARY", f"ENV-CANARY-{canary}")
        pipeline = unique("scanner")
        sdk.create_pipeline(
            pipeline,
            "main.py",
            "scan",
            container_config={"local_folder": str(folder)},
            inputs=[Input("needles", "array")],
            outputs=[Output("found", "array")],
        )
        elastic = sdk.run_pipeline(pipeline, {"needles": encode(needles)})["outputs"]["found"]
        deployment = sdk.create_deployment(pipeline, unique("scanner-ll"), "endpoint", mode="low_latency")
        answer = httpx.post(
            f"{platform.url}/endpoints/{deployment['endpoint_url_path']}",
            json={"needles": encode(needles)},
            timeout=300,
            headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"},
        )
        assert answer.status_code == 200, answer.text
        warm = answer.json()["output"]["found"]
        sdk.delete_pipeline(pipeline, force_deployments_deletion=True)
    canaries = {len(names): "env", len(names) + 1: "file", len(names) + 2: "memory"}
    for mode, found in (("elastic", elastic), ("low_latency", warm)):
        places = [entry.split(":", 1) for entry in found]
        leaked = [f"{names[int(i)]} in {where}" for i, where in places if int(i) < len(names)]
        assert leaked == [], f"{mode}: user code found {leaked}"
        # The search works: the environment variable is in the environment, the package's file
        # among the files, the module's object in memory.
        seen = {(canaries[int(i)], where) for i, where in places if int(i) >= len(names)}
        assert {("env", "env"), ("file", "file"), ("memory", "memory")} <= seen, f"{mode}: {json.dumps(found)}"


# Which credentials open a route, by the route's tag in the OpenAPI document; a credential opens
# a route when the answer is neither 401 nor 403 (a 400 or 404 past the check is fine).
OPENED_BY = {"health": "all", "auth": "all", "packages": {"package", "sdk", "access"}, "endpoints": {"endpoint"}}
DEFAULT_OPENED_BY = {"sdk", "access"}


def test_every_route_takes_only_its_own_credentials(guarded_platform, tmp_path):
    platform, platform_secrets = guarded_platform
    folder = write_folder(tmp_path / "hello", {"main.py": "def hello():\n    return {}\n"})
    with platform.sdk() as sdk:
        pipeline = unique("matrix")
        sdk.create_pipeline(pipeline, "main.py", "hello", container_config={"local_folder": str(folder)})
        deployment = sdk.create_deployment(pipeline, unique("matrix-ep"), "endpoint")
        execution_id = sdk.trigger_endpoint(deployment["name"], inputs={})["execution_id"]
    base = platform.url
    access = httpx.post(
        f"{base}/api/v1/auth/refresh", json={"refresh_token": platform_secrets["sdk token"]}, timeout=30
    ).json()["access_token"]
    credentials = {
        "none": None,
        "wrong": "Bearer " + "w" * 32,
        "endpoint": f"EndpointToken {deployment['endpoint_token']}",
        "endpoint as bearer": f"Bearer {deployment['endpoint_token']}",
        "sdk": f"Bearer {platform_secrets['sdk token']}",
        "access": f"Bearer {access}",
        "package": f"Bearer {platform_secrets['package token']}",
    }
    # Real names where the route is an endpoint's (its token is checked against its deployment);
    # elsewhere names that do not exist, so that an opened route changes nothing.
    endpoint_values = {"path": deployment["endpoint_url_path"], "execution_id": execution_id, "name": "missing"}
    other_values = {"execution_id": "missing-1", "filename": "0" * 64 + ".zip"}
    spec = httpx.get(f"{base}/api/v1/openapi.json", timeout=30).json()
    wrong: list[str] = []
    checked = 0
    with httpx.Client(base_url=base, timeout=60) as client:
        for template, operations in spec["paths"].items():
            for method, operation in operations.items():
                tag = (operation.get("tags") or ["?"])[0]
                values = endpoint_values if tag == "endpoints" else other_values
                url = template
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "path":
                        url = url.replace("{" + parameter["name"] + "}", values.get(parameter["name"], "missing"))
                opened_by = OPENED_BY.get(tag, DEFAULT_OPENED_BY)
                statuses = {}
                for kind, header in credentials.items():
                    body = {"json": {}} if method in ("post", "put", "patch") else {}
                    response = client.request(
                        method.upper(), url, headers={"Authorization": header} if header else {}, **body
                    )
                    statuses[kind] = response.status_code
                    opened = response.status_code not in (401, 403)
                    expected = opened_by == "all" or kind in opened_by
                    if tag == "auth":  # /auth/refresh reads its body, not the header: the same for all
                        expected = opened = statuses[kind] == next(iter(statuses.values()))
                    if opened != expected or response.status_code >= 500:
                        wrong.append(f"{method.upper()} {template} with {kind}: {response.status_code}")
                    checked += 1
    assert checked >= 7 * 25, checked  # every documented route, each with every credential
    assert wrong == []
