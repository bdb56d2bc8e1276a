"""Per-deployment admission: one endpoint token cannot take the platform's shared capacity.

An elastic deployment runs at most ``max_queued_executions`` executions at once (503 with
``Retry-After`` past it); a warm pod that is full refuses a call before reading its body.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlparse

import httpx

from rayline import Input, Output
from tests.integration.conftest import unique, write_folder

SLOW = {
    "main.py": """
    import time

    def slow(seconds):
        time.sleep(seconds)
        return {"slept": seconds}
"""
}


def _pipeline(sdk, tmp_path) -> str:
    name = unique("slow")
    sdk.create_pipeline(
        name,
        "main.py",
        "slow",
        container_config={"local_folder": str(write_folder(tmp_path, SLOW))},
        inputs=[Input("seconds", "number")],
        outputs=[Output("slept", "number")],
    )
    return name


def _call(platform, deployment, seconds):
    return httpx.post(
        f"{platform.url}/endpoints/{deployment['endpoint_url_path']}",
        json={"seconds": seconds},
        headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"},
        timeout=120,
    )


def test_an_elastic_deployment_takes_at_most_its_limit_at_once(platform, sdk, tmp_path):
    pipeline = _pipeline(sdk, tmp_path)
    deployment = sdk.create_deployment(pipeline, unique("capped"), "endpoint", max_queued_executions=1)
    assert deployment["max_queued_executions"] == 1
    first = threading.Thread(target=_call, args=(platform, deployment, 4))
    first.start()
    deadline = time.monotonic() + 30
    while not sdk.list_pipeline_executions(pipeline) and time.monotonic() < deadline:
        time.sleep(0.1)
    refused = _call(platform, deployment, 0)
    assert refused.status_code == 503, refused.text
    assert "max_queued_executions" in refused.json()["message"] and refused.headers["Retry-After"] == "1"
    first.join()
    assert len(sdk.list_pipeline_executions(pipeline)) == 1  # the refused call recorded nothing
    assert _call(platform, deployment, 0).status_code == 200  # room again once it ended
    sdk.delete_pipeline(pipeline, force_deployments_deletion=True)


def test_a_full_warm_pod_refuses_before_reading_the_body(platform, sdk, tmp_path):
    pipeline = _pipeline(sdk, tmp_path)
    deployment = sdk.create_deployment(
        pipeline, unique("full"), "endpoint", mode="low_latency", max_queued_executions=0
    )
    busy = threading.Thread(target=_call, args=(platform, deployment, 4))
    busy.start()
    deadline = time.monotonic() + 30
    while (
        not sdk.get_deployment(deployment["name"])["pods"][0].get("running_executions") and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    # Headers announcing 900 kB, then 10 bytes, then nothing: the answer must not wait for the rest.
    url = urlparse(platform.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(
            (
                f"POST /endpoints/{deployment['endpoint_url_path']} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: EndpointToken {deployment['endpoint_token']}\r\n"
                'Content-Type: application/json\r\nContent-Length: 900000\r\n\r\n{"seconds"'
            ).encode()
        )
        began = time.monotonic()
        answer = conn.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 503"), answer[:300]
    assert time.monotonic() - began < 3, "the pod waited for the body"
    busy.join()
    sdk.delete_pipeline(pipeline, force_deployments_deletion=True)
