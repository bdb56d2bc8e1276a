"""RaylineSdk over ``httpx.MockTransport``: what it sends, how it reads answers, how it waits.

No server and no Ray: each test answers the SDK's requests itself and looks at what was asked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from rayline import RaylineSdk, SdkException
from rayline.sdk import client as sdk_client

TOKEN = "sdk-token-0123456789abcdef"
URL = "http://rayline.test"
Handler = Callable[[httpx.Request], httpx.Response]


def make_sdk(handler: Handler, **options) -> tuple[RaylineSdk, list[httpx.Request]]:
    """An SDK whose requests all go to ``handler``, and the list of the requests it sent."""
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        request.read()
        sent.append(request)
        return handler(request)

    class MockedSdk(RaylineSdk):
        _transport = httpx.MockTransport(record)

    options.setdefault("show_progress", False)
    return MockedSdk(sdk_token=TOKEN, environment_url=URL, **options), sent


def answers(*responses: httpx.Response) -> Iterator[httpx.Response]:
    """The given answers in turn, then the last one forever."""
    yield from responses
    while True:
        yield responses[-1]


def routes(table: dict[tuple[str, str], Callable[[], httpx.Response] | httpx.Response]) -> Handler:
    """A handler from ``(method, path)`` to an answer (or a callable that gives the next one)."""

    def handle(request: httpx.Request) -> httpx.Response:
        answer = table.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"message": f"no route {request.method} {request.url.path}"})
        return answer() if callable(answer) else answer

    return handle


def deployment(status: str, **fields) -> httpx.Response:
    return httpx.Response(200, json={"name": "d", "status": status, **fields})


NO_LATEST = httpx.Response(200, json=None)


@pytest.fixture
def fast_polls(monkeypatch):
    """Pauses of a millisecond between polls, so that a test that waits takes milliseconds."""
    monkeypatch.setattr(sdk_client, "_POLL_FIRST_S", 0.001)
    monkeypatch.setattr(sdk_client, "_POLL_MAX_S", 0.002)


# --- Requests and answers -------------------------------------------------------------------------


def test_every_api_request_carries_the_sdk_token_as_a_bearer_token():
    sdk, sent = make_sdk(
        routes({("GET", "/api/v1/pipelines"): httpx.Response(200, json=[]), ("GET", "/api/v1/deployments"): NO_LATEST})
    )
    assert sdk.list_pipelines() == []
    sdk.list_deployments()
    assert [str(r.url) for r in sent] == [f"{URL}/api/v1/pipelines", f"{URL}/api/v1/deployments"]
    # No access-token exchange (/auth/refresh): the SDK token itself goes with every request.
    assert [r.headers["authorization"] for r in sent] == [f"Bearer {TOKEN}"] * 2


def test_an_error_answer_becomes_an_sdk_exception_with_the_platforms_message():
    body = {"message": "Pipeline 'nope' does not exist.", "name": "NotFound", "request_id": "req-1"}
    sdk, _ = make_sdk(lambda request: httpx.Response(404, json=body))
    with pytest.raises(SdkException) as info:
        sdk.get_pipeline("nope")
    error = info.value
    assert (error.message, error.name, error.status_code, error.request_id) == (
        "Pipeline 'nope' does not exist.",
        "NotFound",
        404,
        "req-1",
    )
    assert str(error) == "[NotFound] Pipeline 'nope' does not exist."


def test_an_error_answer_that_is_not_json_still_says_what_the_platform_answered():
    sdk, _ = make_sdk(lambda request: httpx.Response(502, text="Bad gateway"))
    with pytest.raises(SdkException) as info:
        sdk.list_deployments()
    assert info.value.status_code == 502 and info.value.name is None
    assert info.value.message == "The platform answered 502: Bad gateway"


def test_a_bad_timeout_is_refused_before_any_request():
    sdk, sent = make_sdk(lambda request: deployment("up"))
    with pytest.raises(ValueError, match="timeout_s must be greater than 0"):
        sdk.get_deployment("d", wait_for_completion=True, timeout_s=0)
    with pytest.raises(ValueError, match="timeout_s must be greater than 0"):
        sdk.update_deployment("d", is_enabled=False, timeout_s=-1)  # not even the PATCH
    assert sent == []


# --- Waiting for a deployment or a pipeline --------------------------------------------------------


def test_get_deployment_asks_once_when_not_waiting():
    sdk, sent = make_sdk(
        routes(
            {
                ("GET", "/api/v1/deployments/d"): deployment("creation_pending"),
                ("GET", "/api/v1/deployments/d/executions/latest"): httpx.Response(200, json={"execution_id": "d-7"}),
            }
        )
    )
    got = sdk.get_deployment("d")
    assert got["status"] == "creation_pending" and got["last_execution_id"] == "d-7"
    assert [r.url.path for r in sent] == ["/api/v1/deployments/d", "/api/v1/deployments/d/executions/latest"]
    assert "wait_for_completion" not in sent[0].url.params


def test_get_deployment_waits_through_pending_statuses_until_a_final_one(fast_polls):
    statuses = answers(deployment("creation_pending"), deployment("down_retrying"), deployment("up"))
    sdk, sent = make_sdk(
        routes(
            {
                ("GET", "/api/v1/deployments/d"): lambda: next(statuses),
                ("GET", "/api/v1/deployments/d/executions/latest"): NO_LATEST,
            }
        )
    )
    assert sdk.get_deployment("d", wait_for_completion=True, timeout_s=5)["status"] == "up"
    polls = [r for r in sent if r.url.path == "/api/v1/deployments/d"]
    assert len(polls) == 3
    assert all(r.url.params["wait_for_completion"] == "true" for r in polls)  # so the server holds each one


@pytest.mark.parametrize("final", ["disabled", "standby"])
def test_a_stopped_deployment_is_final_too(fast_polls, final):
    statuses = answers(deployment("up"), deployment(final))
    sdk, _ = make_sdk(
        routes(
            {
                ("GET", "/api/v1/deployments/d"): lambda: next(statuses),
                ("GET", "/api/v1/deployments/d/executions/latest"): NO_LATEST,
            }
        )
    )
    assert sdk.get_deployment("d", wait_for_completion=True)["status"] == "up"  # "up" is final already
    assert sdk.get_deployment("d", wait_for_completion=True)["status"] == final


def test_a_deployment_that_never_settles_times_out_saying_what_and_how_long(fast_polls):
    sdk, sent = make_sdk(routes({("GET", "/api/v1/deployments/d"): deployment("creation_pending")}))
    began = time.monotonic()
    with pytest.raises(SdkException) as info:
        sdk.get_deployment("d", wait_for_completion=True, timeout_s=0.05)
    took = time.monotonic() - began
    assert 0.05 <= took < 0.5
    assert info.value.name == "TimeoutException"
    message = info.value.message
    assert message.startswith("Gave up waiting for deployment 'd' to reach a final status")
    assert "after 0.05 s; its status was still creation_pending." in message
    assert message.endswith("Check it later with get_deployment('d').")
    assert len(sent) >= 2  # it polled, not asked once and gave up


def test_a_deployment_that_failed_to_start_raises_with_its_last_log_lines(fast_polls):
    logs = [{"message": f"line {i}"} for i in range(20)]
    sdk, _ = make_sdk(
        routes(
            {
                ("GET", "/api/v1/deployments/d"): deployment("creation_failed"),
                ("POST", "/api/v1/deployments/d/logs"): httpx.Response(200, json=logs),
            }
        )
    )
    with pytest.raises(SdkException) as info:
        sdk.get_deployment("d", wait_for_completion=True)
    assert info.value.name == "CreationFailedException"
    assert "line 19" in info.value.message and "line 5" in info.value.message and "line 4" not in info.value.message


def test_the_status_line_shows_what_it_waits_on_and_ends_on_the_final_status(fast_polls, capsys):
    statuses = answers(deployment("creation_pending"), deployment("up"))
    sdk, _ = make_sdk(
        routes(
            {
                ("GET", "/api/v1/deployments/d"): lambda: next(statuses),
                ("GET", "/api/v1/deployments/d/executions/latest"): NO_LATEST,
            }
        ),
        show_progress=True,
    )
    sdk.get_deployment("d", wait_for_completion=True)
    shown = [part.rstrip() for part in capsys.readouterr().err.split("\r")[1:]]
    assert shown == ["Deployment 'd': creation_pending, 0 s", "Deployment 'd': up, 0 s"]


def test_get_pipeline_waits_for_ready_the_one_status_the_server_sends(fast_polls):
    pipeline = {"parameters": {"pipeline_name": "p"}, "creation_info": {"status": "ready"}}
    sdk, sent = make_sdk(
        routes(
            {
                ("GET", "/api/v1/pipelines/p"): httpx.Response(200, json=pipeline),
                ("GET", "/api/v1/pipelines/p/executions/latest"): httpx.Response(200, json={"execution_id": "p-1"}),
            }
        )
    )
    got = sdk.get_pipeline("p", wait_for_completion=True)
    assert got["creation_info"] == {"status": "ready", "last_execution_id": "p-1"}
    assert [r.url.path for r in sent] == ["/api/v1/pipelines/p", "/api/v1/pipelines/p/executions/latest"]

    other = {"parameters": {}, "creation_info": {"status": "creation_pending"}}
    sdk, _ = make_sdk(routes({("GET", "/api/v1/pipelines/p"): httpx.Response(200, json=other)}))
    with pytest.raises(
        SdkException, match=r"pipeline 'p' to be ready after 0.05 s; its status was still creation_pending"
    ):
        sdk.get_pipeline("p", wait_for_completion=True, timeout_s=0.05)


# --- Waiting for an execution ---------------------------------------------------------------------


def test_retrieving_outputs_asks_again_on_307_until_the_execution_ends(fast_polls):
    outputs = {
        "outputs": [
            {"pipeline_output_name": "y", "data_type": "number", "value": 4},
            {"pipeline_output_name": "report", "data_type": "file", "value": {"filename": "r.txt", "size": 2}},
        ]
    }
    replies = answers(
        httpx.Response(307, headers={"location": f"{URL}/api/v1/executions/p-3/outputs?wait_for_completion=true"}),
        httpx.Response(307, headers={"location": f"{URL}/api/v1/executions/p-3/outputs?wait_for_completion=true"}),
        httpx.Response(200, json=outputs),
    )
    sdk, sent = make_sdk(
        routes(
            {
                ("GET", "/api/v1/executions/p-3/outputs"): lambda: next(replies),
                ("GET", "/api/v1/executions/p-3/outputs/report"): httpx.Response(200, content=b"ok"),
            }
        )
    )
    assert sdk.retrieve_pipeline_execution_outputs("p-3") == {
        "execution_id": "p-3",
        "outputs": {"y": 4, "report": b"ok"},
    }
    polls = [r for r in sent if r.url.path == "/api/v1/executions/p-3/outputs"]
    assert len(polls) == 3 and all(r.url.params["wait_for_completion"] == "true" for r in polls)


def test_an_execution_that_never_ends_times_out_instead_of_waiting_forever(fast_polls, monkeypatch):
    monkeypatch.setattr(sdk_client, "_EXECUTION_WAIT_S", 0.05)
    sdk, sent = make_sdk(lambda request: httpx.Response(307, headers={"location": str(request.url)}))
    began = time.monotonic()
    with pytest.raises(SdkException) as info:
        sdk.retrieve_pipeline_execution_outputs("p-9")
    assert time.monotonic() - began < 0.5 and len(sent) >= 2
    assert info.value.name == "TimeoutException"
    assert info.value.message == (
        "Gave up waiting for execution 'p-9' to end after 0.05 s; its status was still Pending or Running. "
        "Get its outputs later with retrieve_pipeline_execution_outputs('p-9')."
    )


def test_a_failed_execution_raises_the_platforms_message():
    failure = {"message": "Execution 'p-4' ended with status Failed: boom", "name": "ExecutionFailed"}
    sdk, _ = make_sdk(lambda request: httpx.Response(409, json=failure))
    with pytest.raises(SdkException) as info:
        sdk.retrieve_pipeline_execution_outputs("p-4")
    assert info.value.name == "ExecutionFailed" and "boom" in info.value.message


# --- Endpoints ------------------------------------------------------------------------------------

ENDPOINT = {"name": "d", "status": "up", "endpoint_url_path": "double", "outputs_mapping": []}


def test_an_endpoint_call_with_its_token_sends_it_as_an_endpoint_token_not_the_sdk_token():
    sdk, sent = make_sdk(
        routes(
            {
                ("GET", "/api/v1/deployments/d"): httpx.Response(200, json=ENDPOINT),
                ("POST", "/endpoints/double"): httpx.Response(200, json={"execution_id": "d-1", "output": {"y": 6}}),
            }
        )
    )
    assert sdk.trigger_endpoint("d", endpoint_token="endpoint-secret", inputs={"x": 3}) == {
        "execution_id": "d-1",
        "outputs": {"y": 6},
    }
    call = sent[-1]
    assert str(call.url) == f"{URL}/endpoints/double"
    assert call.headers["authorization"] == "EndpointToken endpoint-secret"
    assert json.loads(call.content) == {"x": 3}


def test_an_endpoint_call_that_runs_on_waits_at_its_result_url_with_the_token(fast_polls):
    result = {
        "execution_id": "d-2",
        "outputs": {"y": {"value": 8}, "f": {"url": f"{URL}/endpoints/v1/double/executions/d-2/outputs/f"}},
    }
    replies = answers(
        httpx.Response(307, headers={"location": f"{URL}/endpoints/v1/double/executions/d-2"}),
        httpx.Response(200, json=result),
    )
    handler = routes(
        {
            ("GET", "/api/v1/deployments/d"): httpx.Response(200, json=ENDPOINT),
            ("POST", "/endpoints/double"): httpx.Response(
                303, json={"execution_id": "d-2"}, headers={"location": "/endpoints/v1/double/executions/d-2"}
            ),
            ("GET", "/endpoints/v1/double/executions/d-2"): lambda: next(replies),
            ("GET", "/endpoints/v1/double/executions/d-2/outputs/f"): httpx.Response(200, content=b"file"),
        }
    )
    sdk, sent = make_sdk(handler)
    got = sdk.trigger_endpoint("d", endpoint_token="endpoint-secret", inputs={"x": 4})
    assert got == {"execution_id": "d-2", "outputs": {"y": 8, "f": b"file"}}
    endpoint_requests = [r for r in sent if r.url.path.startswith("/endpoints/")]
    assert [r.url.path for r in endpoint_requests] == [
        "/endpoints/double",
        "/endpoints/v1/double/executions/d-2",
        "/endpoints/v1/double/executions/d-2",
        "/endpoints/v1/double/executions/d-2/outputs/f",
    ]
    assert {r.headers["authorization"] for r in endpoint_requests} == {"EndpointToken endpoint-secret"}
    assert not [r for r in sent if "endpoint-secret" in str(r.url)]  # never in a URL, where logs keep it

    sdk, sent = make_sdk(handler)  # not waiting: the execution id from the 303, nothing more
    assert sdk.trigger_endpoint("d", endpoint_token="endpoint-secret", wait_for_completion=False) == {
        "execution_id": "d-2"
    }
    assert sent[-1].url.path == "/endpoints/double"


def test_waiting_at_an_endpoints_result_url_is_bounded_too(fast_polls, monkeypatch):
    monkeypatch.setattr(sdk_client, "_EXECUTION_WAIT_S", 0.05)
    sdk, _ = make_sdk(
        routes(
            {
                ("GET", "/api/v1/deployments/d"): httpx.Response(200, json=ENDPOINT),
                ("GET", "/endpoints/v1/double/executions/d-5"): httpx.Response(
                    307, headers={"location": f"{URL}/endpoints/v1/double/executions/d-5"}
                ),
            }
        )
    )
    with pytest.raises(SdkException, match=r"execution 'd-5' to end after 0.05 s.*retrieve_endpoint_results\('d'"):
        sdk.retrieve_endpoint_results("d", "d-5", endpoint_token="endpoint-secret")


# --- The wait helper itself, on a fake clock --------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now, self.sleeps = 100.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_the_pause_between_polls_grows_to_a_ceiling_and_stops_at_the_deadline():
    clock = FakeClock()
    with pytest.raises(SdkException, match="after 10 s; its status was still pending"):
        sdk_client._wait_until(
            lambda: "pending", lambda s: s == "done", 10, "x", status=str, sleep=clock.sleep, clock=clock
        )
    first, growth, ceiling = sdk_client._POLL_FIRST_S, sdk_client._POLL_GROWTH, sdk_client._POLL_MAX_S
    assert clock.sleeps[:2] == [first, round(first * growth, 6)]
    assert all(b >= a for a, b in zip(clock.sleeps, clock.sleeps[1:-1], strict=False))  # growing...
    assert max(clock.sleeps) == ceiling  # ...to its ceiling
    assert clock.now == pytest.approx(110.0)  # the last pause ends at the deadline, not past it


def test_no_pause_after_a_request_the_server_held():
    clock = FakeClock()
    seen = iter(["pending", "pending", "done"])

    def held_fetch() -> str:
        clock.now += 5.0  # wait_for_completion: the server held the request 5 s
        return next(seen)

    assert (
        sdk_client._wait_until(held_fetch, lambda s: s == "done", 60, "x", status=str, sleep=clock.sleep, clock=clock)
        == "done"
    )
    assert clock.sleeps == []
