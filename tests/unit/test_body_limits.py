"""RequestGuard: body limits and the SDK token, before a body is read or parsed; and the answers
the control plane's app gives to bad bodies, unexpected errors and strangers at its endpoints.

The guard runs on a tiny FastAPI app behind a real uvicorn server (bytes over a socket, chunked
or with a Content-Length), then the real ``create_app`` runs on stub services (httpx's ASGI
transport, which pulls a streamed body only as the app asks for it)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Body, Depends, FastAPI, Request
from starlette.requests import Request as StarletteRequest

from rayline.api.app import create_app
from rayline.api.context import AppContext
from rayline.api.http_io import read_inputs
from rayline.api.limits import JSON_BODY_BYTES, BodyLimit, RequestGuard, body_limits
from rayline.domain.tokens import hash_token
from rayline.errors import InvalidInput, NotFound, Unauthorized
from rayline.ports import free_port

MiB = 1024 * 1024
BIG = 64 * MiB
CHUNK = 64 * 1024


def chunks(total: int = BIG, sent: list[int] | None = None):
    """A streamed body (no Content-Length: sent chunked), counting what the client got to send."""
    chunk = b"x" * CHUNK
    for _ in range(total // CHUNK):
        if sent is not None:
            sent[0] += CHUNK
        yield chunk


async def achunks(total: int = BIG, sent: list[int] | None = None):
    for chunk in chunks(total, sent):
        yield chunk


class Counted:
    """An ASGI wrapper that counts the body bytes that went through ``receive``."""

    def __init__(self, app) -> None:
        self.app, self.bytes = app, 0

    async def __call__(self, scope, receive, send) -> None:
        async def counted():
            message = await receive()
            self.bytes += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


# --- the guard in front of a real server -----------------------------------------------------


def _tiny_app() -> FastAPI:
    app = FastAPI()

    def token(request: Request) -> None:
        if request.headers.get("authorization") != "Bearer ok":
            raise Unauthorized("no token")

    @app.put("/json", dependencies=[Depends(token)])
    def put_json(body: Any = Body(...)):  # FastAPI reads and parses this before `token` runs
        return {"items": len(body)}

    return app


@pytest.fixture(scope="module")
def server():
    inner = Counted(_tiny_app())  # what reached the app
    guard = RequestGuard(
        inner,
        lambda method, path: BodyLimit(MiB, "a test request", "Send less."),
        lambda scope: None if (b"authorization", b"Bearer ok") in scope["headers"] else Unauthorized("Missing token."),
    )
    outer = Counted(guard)  # what the guard took from the server
    port = free_port()
    instance = uvicorn.Server(uvicorn.Config(outer, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/json", inner=inner, outer=outer)
    instance.should_exit = True
    thread.join(10)


def _send(server, **kwargs) -> tuple[httpx.Response, float, int, int]:
    server.inner.bytes = server.outer.bytes = 0
    began = time.monotonic()
    response = httpx.put(server.url, timeout=60, **kwargs)
    return response, time.monotonic() - began, server.inner.bytes, server.outer.bytes


def test_a_declared_64_mib_body_without_a_token_is_413_unread(server):
    body = b"[" + b"1," * (BIG // 2) + b"1]"
    response, took, app_bytes, guard_bytes = _send(server, content=body)
    assert response.status_code == 413, response.text
    assert response.json()["name"] == "PayloadTooLarge"
    assert f"{len(body)} bytes" in response.json()["message"] and "Send less." in response.json()["message"]
    assert (app_bytes, guard_bytes) == (0, 0)  # the server discarded it: the client got its answer
    assert "connection" not in response.headers
    assert took < 10


def test_a_chunked_64_mib_body_without_a_token_is_401_unread_and_its_connection_closed(server):
    response, took, app_bytes, guard_bytes = _send(server, content=chunks())
    assert response.status_code == 401 and response.json() == {"message": "Missing token.", "name": "Unauthorized"}
    assert response.headers["connection"] == "close"  # of unknown length: nothing more of it is read
    assert (app_bytes, guard_bytes) == (0, 0)
    assert took < 10


def test_a_connection_serves_on_after_a_declared_body_is_refused(server):
    with httpx.Client(timeout=30) as client:
        refused = client.put(server.url, content=b"x" * (2 * MiB), headers={"Authorization": "Bearer ok"})
        assert refused.status_code == 413 and "2097152 bytes" in refused.json()["message"]
        assert client.put(server.url, json=[1], headers={"Authorization": "Bearer ok"}).json() == {"items": 1}


@pytest.mark.parametrize("declared", [False, True])
def test_64_mib_with_a_token_is_413_and_never_held(server, declared):
    # With a Content-Length the guard answers from the header; chunked, it counts as bytes arrive
    # and stops the app at the limit. Memory stays far below the body either way.
    headers = {"Authorization": "Bearer ok", **({"Content-Length": str(BIG)} if declared else {})}
    tracemalloc.start()  # the client streams from a generator too: what is allocated is the server's
    try:
        response, took, app_bytes, guard_bytes = _send(server, content=chunks(), headers=headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413, response.text
    assert response.json()["name"] == "PayloadTooLarge" and "1048576 bytes" in response.json()["message"]
    assert app_bytes <= MiB and guard_bytes <= MiB + 1024 * 1024  # the limit, plus at most what one read brought
    assert peak < 16 * MiB, f"{peak} bytes allocated at the peak"
    assert took < 20


def test_bodies_within_the_limit_go_through(server):
    response, _, app_bytes, _ = _send(server, json=list(range(1000)), headers={"Authorization": "Bearer ok"})
    assert response.status_code == 200 and response.json() == {"items": 1000}
    assert app_bytes == len(httpx.Request("PUT", "/", json=list(range(1000))).read())


# --- which limit for which route -------------------------------------------------------------


def test_routes_get_the_limit_of_what_they_carry():
    settings = SimpleNamespace(max_upload_bytes=50 * MiB, max_file_bytes=20 * MiB, max_data_store_object_bytes=64 * MiB)
    limit_for = body_limits(settings, "/api/v1")
    assert limit_for("POST", "/api/v1/pipelines").max_bytes == 51 * MiB
    # The data store's signed uploads carry objects: their own limit (plus the form's fields).
    for method, path in (("POST", "/api/v1/data-store/signed/upload"), ("PUT", "/api/v1/data-store/signed/part")):
        assert limit_for(method, path).max_bytes == 65 * MiB
        assert "RAYLINE_MAX_DATA_STORE_OBJECT_BYTES" in limit_for(method, path).problem(70 * MiB)
    assert "RAYLINE_MAX_UPLOAD_BYTES" in limit_for("POST", "/api/v1/pipelines").problem(60 * MiB)
    for path in (
        "/api/v1/pipelines/p/run",
        "/api/v1/deployments/d/executions",
        "/endpoints/my-path",
        "/endpoints/my-path/",
    ):
        assert limit_for("POST", path).max_bytes == 20 * MiB, path
        assert "RAYLINE_MAX_FILE_BYTES" in limit_for("POST", path).problem(21 * MiB)
    for method, path in (
        ("POST", "/api/v1/auth/refresh"),
        ("PUT", "/api/v1/environment-variables"),
        ("POST", "/api/v1/endpoints"),
        ("PATCH", "/api/v1/deployments/d"),
        ("GET", "/api/v1/pipelines"),
        ("GET", "/endpoints/v1/p/executions/p-1"),
        ("POST", "/api/v1/deployments/d/logs"),
        ("PUT", "/api/v1/pipelines/p/run"),
    ):
        assert limit_for(method, path).max_bytes == JSON_BODY_BYTES == MiB, (method, path)


# --- the real app, on stub services ----------------------------------------------------------

NOW = datetime(2026, 12, 1, tzinfo=UTC)
EARLIER, LATER = NOW - timedelta(days=1), NOW + timedelta(seconds=1)
SDK_TOKEN = "s" * 24
ENDPOINT_TOKEN = "e" * 24


class Executions:
    def __init__(self) -> None:
        self.rows = {
            "known-1": SimpleNamespace(
                execution_id="known-1",
                deployment_name="known",
                status="Succeeded",
                error=None,
                outputs=[],
                created_at=LATER,
            ),
            "other-1": SimpleNamespace(
                execution_id="other-1",
                deployment_name="other",
                status="Running",
                error=None,
                outputs=[],
                created_at=LATER,
            ),
            # a pipeline run named like the deployment: its id has the form, its record says no
            "known-2": SimpleNamespace(
                execution_id="known-2", deployment_name=None, status="Running", error=None, outputs=[], created_at=LATER
            ),
            # an execution of a deleted deployment of the same name: not the new one's
            "known-3": SimpleNamespace(
                execution_id="known-3",
                deployment_name="known",
                status="Succeeded",
                error=None,
                outputs=[],
                created_at=EARLIER,
            ),
        }
        self.asked: list[str] = []
        self.waited: list[str] = []

    def get(self, execution_id: str):
        self.asked.append(execution_id)
        if execution_id not in self.rows:
            raise NotFound(f"Execution {execution_id!r} does not exist.")
        return self.rows[execution_id]

    async def wait_until_final(self, execution_id: str, hold_s: float):
        self.waited.append(execution_id)
        return self.get(execution_id)


class Deployments:
    rows = {"known-path": SimpleNamespace(name="known", endpoint_token_hash=hash_token(ENDPOINT_TOKEN), created_at=NOW)}

    def find_by_path(self, path: str):
        return self.rows.get(path)

    def check_endpoint_token(self, row, token) -> bool:
        from rayline.domain.tokens import token_matches

        return token_matches(token, row.endpoint_token_hash)


class Environment:
    def put(self, values):
        if values == "boom":
            raise RuntimeError("internal detail: /srv/secret/path")
        return values


class AccessTokens:
    def problem(self, token: str) -> str:
        return "Invalid access token."


@pytest.fixture
def app():
    settings = SimpleNamespace(
        max_upload_bytes=2 * MiB,
        max_file_bytes=MiB,
        max_data_store_object_bytes=4 * MiB,
        wait_hold_s=5.0,
        endpoint_wait_s=1.0,
    )
    context = AppContext(
        settings=settings,
        db=None,
        pipelines=None,
        executions=Executions(),
        deployments=Deployments(),
        environment=Environment(),
        sdk_token_hash=hash_token(SDK_TOKEN),
        access_tokens=AccessTokens(),
        data_store=None,
        resource_metrics=None,
        code_access=None,
        metrics=None,
    )
    return create_app(context)


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://rayline") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


SDK = {"Authorization": f"Bearer {SDK_TOKEN}"}
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("method, path", [("PUT", "/api/v1/environment-variables"), ("POST", "/api/v1/auth/refresh")])
def test_64_mib_without_a_token_is_refused_before_the_app_reads_it(app, method, path):
    sent = [0]
    response = call(app, method, path, content=achunks(sent=sent), headers={"Content-Type": "application/json"})
    # PUT needs the SDK token: 401 before anything is read. /auth/refresh takes it in its body:
    # read up to the JSON limit, then 413.
    assert response.status_code == (401 if method == "PUT" else 413), response.text
    assert sent[0] <= (0 if method == "PUT" else MiB + CHUNK)
    declared = call(app, method, path, content=b"x" * BIG, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and declared.json()["name"] == "PayloadTooLarge"
    assert "limit for a JSON API request is 1048576 bytes" in declared.json()["message"]


def test_open_routes_need_no_token_and_others_do(app):
    assert call(app, "GET", "/api/v1/users/me").status_code == 501
    assert call(app, "GET", "/api/v1/openapi.json").status_code == 200
    assert call(app, "POST", "/api/v1/auth/refresh", json={"refresh_token": "x"}).status_code == 401
    for method, path in (
        ("GET", "/api/v1/pipelines"),
        ("GET", "/api/v1/no-such-route"),
        ("POST", "/api/v1/pipelines/p/run"),
    ):
        response = call(app, method, path)
        assert response.status_code == 401 and response.json()["name"] == "Unauthorized", (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
    assert call(app, "GET", "/api/v1/no-such-route", headers=SDK).status_code == 404
    assert call(
        app, "PUT", "/api/v1/environment-variables", headers=SDK, json={"environment_variables": {"A": "1"}}
    ).json() == {"environment_variables": {"A": "1"}}


def test_deep_json_is_a_400_naming_the_body(app):
    for path in ("/api/v1/environment-variables", "/api/v1/auth/refresh"):
        response = call(
            app,
            "PUT" if "environment" in path else "POST",
            path,
            content=DEEP,
            headers={**SDK, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["name"] == "InvalidInput" and "nested too deeply" in response.json()["message"]


def test_read_inputs_turns_deep_json_into_invalid_input():
    async def go():
        async def receive():
            return {"type": "http.request", "body": DEEP.encode(), "more_body": False}

        request = StarletteRequest(
            {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", b"application/json")]},
            receive,
        )
        return await read_inputs(request, 10 * MiB)

    with pytest.raises(InvalidInput, match="nested too deeply"):
        asyncio.run(go())


def test_an_unexpected_error_answers_an_error_id_and_logs_the_traceback(app, caplog):
    with caplog.at_level(logging.ERROR, logger="rayline.api.errors"):
        response = call(
            app, "PUT", "/api/v1/environment-variables", headers=SDK, json={"environment_variables": "boom"}
        )
    assert response.status_code == 500
    body = response.json()
    assert body["name"] == "InternalError" and len(body["error_id"]) == 16
    assert body["error_id"] in body["message"] and "internal detail" not in response.text
    assert "RuntimeError" not in response.text
    record = next(r for r in caplog.records if body["error_id"] in r.getMessage())
    assert record.exc_info and "internal detail" in str(record.exc_info[1])


def test_an_endpoint_tells_a_stranger_nothing(app):
    unknown = call(app, "POST", "/endpoints/no-such-path", json={})
    known = call(app, "POST", "/endpoints/known-path", json={})
    wrong = call(app, "POST", "/endpoints/known-path", json={}, headers={"Authorization": "EndpointToken nope"})
    wrong_unknown = call(
        app, "POST", "/endpoints/no-such-path", json={}, headers={"Authorization": f"EndpointToken {ENDPOINT_TOKEN}"}
    )
    for response in (unknown, known, wrong, wrong_unknown):
        assert response.status_code == 401
        assert response.json() == unknown.json() and response.json()["name"] == "Unauthorized"
        assert response.headers["www-authenticate"] == "EndpointToken"
    for path in ("/endpoints/v1/no-such-path/executions/known-1", "/endpoints/v1/known-path/executions/known-1"):
        assert call(app, "GET", path).json() == unknown.json()


def test_an_endpoint_result_is_checked_to_be_its_own_before_anything_waits(app):
    executions = app.state.context.executions
    headers = {"Authorization": f"EndpointToken {ENDPOINT_TOKEN}"}
    answers = {}
    for execution_id in ("other-1", "known-2", "known-3", "known-99", "nope", "known-1x", "known"):
        for suffix in ("", "/outputs/doc"):
            response = call(app, "GET", f"/endpoints/v1/known-path/executions/{execution_id}{suffix}", headers=headers)
            assert response.status_code == 404, (execution_id, response.text)
            answers[execution_id, suffix] = response.json()["message"].replace(repr(execution_id), "<id>")
    assert len(set(answers.values())) == 1  # another deployment's or none at all: the same answer
    # Another deployment's ids are refused by their form, unread; one of the right form that is not
    # this deployment's is refused from its record, without waiting on it.
    assert not {"other-1", "nope", "known-1x", "known"} & set(executions.asked)
    assert executions.waited == ["known-99", "known-99"]  # a warm pod's record may be a moment late
    ok = call(app, "GET", "/endpoints/v1/known-path/executions/known-1", headers=headers)
    assert ok.status_code == 200 and ok.json() == {"execution_id": "known-1", "outputs": {}}
    legacy = call(app, "GET", f"/endpoints/v1/known-path/executions/known-1?token={ENDPOINT_TOKEN}")
    assert legacy.status_code == 200  # craft-ai-sdk 0.74.7 sends the token in the URL
