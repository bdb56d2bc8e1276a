"""What a stranger can make the control plane do, on a real platform: huge or deep bodies without
a token, endpoint paths and execution ids that are not theirs; and the SDK keeping endpoint
tokens out of URLs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rayline import Input, Output
from tests.integration.conftest import unique, write_folder

MiB = 1024 * 1024
BIG = 64 * MiB
DEEP = "[" * 100_000 + "]" * 100_000

ECHO = {
    "main.py": """
        import time

        def handler(x, sleep_s=0):
            time.sleep(sleep_s)
            return {"y": x}
    """,
}


def chunks(total: int = BIG):
    chunk = b"x" * (64 * 1024)
    for _ in range(total // len(chunk)):
        yield chunk


def refused(method: str, url: str, **kwargs) -> httpx.Response:
    """A request whose body the platform refuses before reading it. A declared body is then read
    and discarded by the server, so the client gets the answer; a chunked one is not, and its
    connection is closed: through Serve's HAProxy the client may then see a reset, or a stall,
    instead of the answer, so a transport error is retried once (with the whole body anew)."""
    try:
        return httpx.request(method, url, timeout=20, **kwargs)
    except httpx.TransportError:
        kwargs["content"] = chunks()
        return httpx.request(method, url, timeout=20, **kwargs)


@pytest.fixture(scope="module")
def endpoints(platform, tmp_path_factory):
    """Two elastic endpoints of one pipeline: ``mine`` and ``theirs``."""
    sdk = platform.sdk()
    pipeline = unique("echo")
    folder = write_folder(tmp_path_factory.mktemp("echo"), ECHO)
    sdk.create_pipeline(
        pipeline,
        "main.py",
        "handler",
        container_config={"local_folder": str(folder)},
        inputs=[Input("x", "number"), Input("sleep_s", "number", is_required=False)],
        outputs=[Output("y", "number")],
    )
    mine = sdk.create_deployment(pipeline, unique("mine"), "endpoint", mode="elastic")
    theirs = sdk.create_deployment(pipeline, unique("theirs"), "endpoint", mode="elastic")
    yield {"mine": mine, "theirs": theirs}
    sdk.delete_pipeline(pipeline, force_deployments_deletion=True)


def endpoint_url(platform, deployment) -> str:
    return f"{platform.url}/endpoints/{deployment['endpoint_url_path']}"


@pytest.mark.parametrize("method, path", [("POST", "/api/v1/auth/refresh"), ("PUT", "/api/v1/environment-variables")])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_64_mib_without_a_token_is_refused_at_once(platform, method, path, declared):
    headers = {"Content-Type": "application/json", **({"Content-Length": str(BIG)} if declared else {})}
    began = time.monotonic()
    response = refused(method, f"{platform.url}{path}", content=chunks(), headers=headers)
    took = time.monotonic() - began
    # A declared size over the limit: 413 before anything else. Chunked: PUT needs the SDK token
    # (401 unread); /auth/refresh takes it in its body, so it is read up to the limit (413).
    expected = 413 if declared or "refresh" in path else 401
    assert response.status_code == expected, response.text
    assert response.json()["name"] == ("PayloadTooLarge" if expected == 413 else "Unauthorized")
    if expected == 413:
        assert "1048576 bytes" in response.json()["message"]
    assert took < 45, f"{took:.1f} s"


def test_thirty_such_requests_at_once_leave_the_platform_answering(platform):
    # Before the guard, about 30 of these exhausted the control plane's memory.
    def one(i: int) -> int:
        path = "/api/v1/auth/refresh" if i % 2 else "/api/v1/environment-variables"
        return httpx.request(
            "POST" if i % 2 else "PUT",
            f"{platform.url}{path}",
            content=chunks(),
            timeout=60,
            headers={"Content-Type": "application/json", "Content-Length": str(BIG)},
        ).status_code

    began = time.monotonic()
    with ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(one, range(30)))
    assert statuses == [413] * 30
    assert time.monotonic() - began < 60
    assert httpx.get(f"{platform.url}/api/v1/health", timeout=10).status_code == 200


def test_deep_json_is_a_400_naming_the_body(platform, api, endpoints):
    for response in (
        api.put("/environment-variables", content=DEEP, headers={"Content-Type": "application/json"}),
        httpx.post(
            f"{platform.url}/api/v1/auth/refresh",
            content=DEEP,
            headers={"Content-Type": "application/json"},
            timeout=30,
        ),
        httpx.post(
            endpoint_url(platform, endpoints["mine"]),
            content=DEEP,
            timeout=30,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"EndpointToken {endpoints['mine']['endpoint_token']}",
            },
        ),
    ):
        assert response.status_code == 400, response.text
        assert response.json()["name"] == "InvalidInput" and "nested too deeply" in response.json()["message"]


def test_an_endpoint_path_says_nothing_to_a_caller_without_its_token(platform, endpoints):
    mine = endpoints["mine"]
    answers = [
        httpx.post(f"{platform.url}/endpoints/{unique('nothing-here')}", json={"x": 1}, timeout=30),
        httpx.post(endpoint_url(platform, mine), json={"x": 1}, timeout=30),
        httpx.post(
            endpoint_url(platform, mine),
            json={"x": 1},
            timeout=30,
            headers={"Authorization": "EndpointToken not-the-token"},
        ),
        httpx.post(
            f"{platform.url}/endpoints/{unique('nothing-here')}",
            json={"x": 1},
            timeout=30,
            headers={"Authorization": f"EndpointToken {mine['endpoint_token']}"},
        ),
        httpx.get(f"{platform.url}/endpoints/v1/{unique('nothing-here')}/executions/x-1", timeout=30),
    ]
    for response in answers:
        assert response.status_code == 401, response.text
        assert response.json() == answers[0].json()
        assert response.headers["www-authenticate"] == "EndpointToken"


def test_another_endpoints_execution_is_a_404_at_once(platform, sdk, endpoints):
    mine, theirs = endpoints["mine"], endpoints["theirs"]
    # Theirs still runs: the result route would hold a request on it for seconds.
    running = sdk.trigger_endpoint(theirs["name"], inputs={"x": 1, "sleep_s": 20}, wait_for_completion=False)
    headers = {"Authorization": f"EndpointToken {mine['endpoint_token']}"}
    result_url = f"{platform.url}/endpoints/v1/{mine['endpoint_url_path']}/executions"
    answers = {}
    for execution_id in (running["execution_id"], f"{mine['name']}-999999", "nothing-1"):
        began = time.monotonic()
        response = httpx.get(f"{result_url}/{execution_id}", headers=headers, timeout=30)
        took = time.monotonic() - began
        assert response.status_code == 404, response.text
        answers[execution_id] = response.json()["message"].replace(repr(execution_id), "<id>")
        if execution_id == running["execution_id"]:
            assert took < 2, f"{took:.1f} s"
        file = httpx.get(f"{result_url}/{execution_id}/outputs/y", headers=headers, timeout=30)
        assert file.status_code == 404
    assert len(set(answers.values())) == 1, answers


def test_the_sdk_sends_endpoint_tokens_in_a_header_and_the_url_form_still_works(platform, sdk, endpoints):
    mine = endpoints["mine"]
    token = mine["endpoint_token"]
    triggered = sdk.trigger_endpoint(mine["name"], endpoint_token=token, inputs={"x": 7})
    assert triggered["outputs"] == {"y": 7}
    urls = []
    sdk._client.event_hooks["request"].append(lambda request: urls.append(str(request.url)))
    results = sdk.retrieve_endpoint_results(mine["name"], triggered["execution_id"], endpoint_token=token)
    assert results == {"execution_id": triggered["execution_id"], "outputs": {"y": 7}}
    assert urls and not [url for url in urls if token in url], urls
    # craft-ai-sdk 0.74.7 sends ?token=: still accepted.
    legacy = httpx.get(
        f"{platform.url}/endpoints/v1/{mine['endpoint_url_path']}/executions/{triggered['execution_id']}",
        params={"token": token},
        timeout=30,
    )
    assert legacy.status_code == 200 and legacy.json()["outputs"] == {"y": {"value": 7}}


def test_a_warm_pod_answers_a_stranger_as_the_control_plane_does(platform, sdk, endpoints):
    # Serve routes a low-latency deployment's prefix straight to its pod, which checks the token
    # itself: its refusal must not tell the path from one where nothing is deployed.
    pipeline = endpoints["mine"]["pipeline"]["name"]
    warm = sdk.create_deployment(pipeline, unique("warm"), "endpoint", mode="low_latency")
    try:
        answers = [
            httpx.post(endpoint_url(platform, warm), json={"x": 1}, timeout=30, headers=headers)
            for headers in ({}, {"Authorization": "EndpointToken not-the-token"})
        ]
        # Other methods too: a GET must not tell a warm pod (its own 405) from nothing at all.
        answers += [
            httpx.request(method, url, timeout=30)
            for method in ("GET", "DELETE")
            for url in (endpoint_url(platform, warm), f"{platform.url}/endpoints/{unique('nothing-here')}")
        ]
        nothing = httpx.post(f"{platform.url}/endpoints/{unique('nothing-here')}", json={"x": 1}, timeout=30)
        for response in answers:
            assert response.status_code == 401 and response.json() == nothing.json()
            assert response.headers["www-authenticate"] == "EndpointToken"
        allowed = httpx.get(
            endpoint_url(platform, warm),
            timeout=30,
            headers={"Authorization": f"EndpointToken {warm['endpoint_token']}"},
        )
        assert allowed.status_code == 405  # with its token, the method is what is wrong
    finally:
        sdk.delete_deployment(warm["name"])
