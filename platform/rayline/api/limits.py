"""How much of a request the control plane reads, and from whom: ``RequestGuard``.

A pure ASGI middleware, outermost but for Starlette's own error middleware, so it acts before
authentication, before FastAPI reads and parses a body, and before any route runs:

1. A declared ``Content-Length`` over the route's limit is answered 413 at once, unread.
2. A request that needs the SDK token and lacks it is answered 401 at once, unread (FastAPI
   parses a ``Body(...)`` parameter before it runs the router's token dependency).
3. Otherwise the body is counted as it arrives (chunked bodies too): past the limit the app
   gets no more of it and the client gets 413, whatever the app was doing with it.

After an early answer the server (uvicorn, in the Serve replica) reads and discards the rest of
the body, unbuffered, so that a client that sends its whole body before it reads (most HTTP
clients do) gets the answer rather than a reset or a hang. Where the rest is unbounded (a chunked
body) or over ``DRAIN_BYTES``, the answer says ``Connection: close`` instead, so nothing more of
it is read: that client may then see the connection end instead of the answer.

Limits by route (the first that matches):

- ``POST {api}/pipelines``: the archive limit (``RAYLINE_MAX_UPLOAD_BYTES``) plus room for the
  form fields around it;
- ``POST {api}/pipelines/<name>/run``, ``POST {api}/deployments/<name>/executions`` and
  ``POST /endpoints/<path>`` (inputs, files among them): ``RAYLINE_MAX_FILE_BYTES``, the same
  bound ``rayline.api.http_io.read_inputs`` applies to the whole body, also in warm pods;
- anything else (JSON API requests, ``/auth/refresh``, forms without files): ``JSON_BODY_BYTES``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rayline.api.http_errors import rayline_error_response
from rayline.errors import PayloadTooLarge, RaylineError

# Largest body of a JSON API request (and of /auth/refresh, and of forms without files). A module
# constant for now; a RAYLINE_* setting may replace it.
JSON_BODY_BYTES = 1024 * 1024
# Room for the form fields around a pipeline's archive, beyond RAYLINE_MAX_UPLOAD_BYTES.
FORM_OVERHEAD_BYTES = 1024 * 1024
# After an early answer, the most of a declared body left for the server to read and discard;
# past it (or for a chunked body, of unknown length), the connection is closed instead.
DRAIN_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class BodyLimit:
    max_bytes: int
    what: str  # the kind of request, for the message
    advice: str  # what to do instead

    def problem(self, size: int, complete: bool = True) -> str:
        amount = f"{size} bytes" if complete else f"more than {self.max_bytes} bytes"
        return f"The request body is {amount}; the limit for {self.what} is {self.max_bytes} bytes. {self.advice}"


def body_limits(settings, api_prefix: str) -> Callable[[str, str], BodyLimit]:
    """``(method, path) -> BodyLimit`` for the control plane's routes."""
    json_limit = BodyLimit(
        JSON_BODY_BYTES,
        "a JSON API request",
        "Send less in one request; files go as file inputs (multipart), to run_pipeline or to an endpoint.",
    )
    upload = BodyLimit(
        settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
        "a pipeline upload "
        f"(RAYLINE_MAX_UPLOAD_BYTES, {settings.max_upload_bytes}, plus {FORM_OVERHEAD_BYTES} "
        "for the form's fields)",
        "Upload only what the pipeline needs (container_config['included_folders']), or "
        "raise RAYLINE_MAX_UPLOAD_BYTES on the platform.",
    )
    files = BodyLimit(
        settings.max_file_bytes,
        "a request carrying inputs (RAYLINE_MAX_FILE_BYTES)",
        "Send smaller files, or raise RAYLINE_MAX_FILE_BYTES on the platform.",
    )
    data_store = BodyLimit(
        settings.max_data_store_object_bytes + FORM_OVERHEAD_BYTES,
        f"a data store object (RAYLINE_MAX_DATA_STORE_OBJECT_BYTES, {settings.max_data_store_object_bytes})",
        "Split the object, or raise RAYLINE_MAX_DATA_STORE_OBJECT_BYTES on the platform.",
    )
    signed = {("POST", f"{api_prefix}/data-store/signed/upload"), ("PUT", f"{api_prefix}/data-store/signed/part")}
    prefix = re.escape(api_prefix)
    file_routes = re.compile(
        rf"{prefix}/pipelines/[^/]+/run|{prefix}/deployments/[^/]+/executions"
        r"|/endpoints/(?!v1/)[^/]+"
    )

    def limit_for(method: str, path: str) -> BodyLimit:
        path = path.rstrip("/")
        if (method, path) in signed:
            return data_store
        if method == "POST":
            if path == f"{api_prefix}/pipelines":
                return upload
            if file_routes.fullmatch(path):
                return files
        return json_limit

    return limit_for


def route_path(scope: Scope) -> str:
    """The path the routes match, without the app's ``root_path``."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class _BodyTooLarge(PayloadTooLarge):
    """Raised to the app from ``receive`` past the limit."""


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


class RequestGuard:
    """See the module's docstring. ``refusal(scope)`` says why a request may not be read at all
    (e.g. ``Unauthorized``), or None."""

    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[str, str], BodyLimit],
        refusal: Callable[[Scope], RaylineError | None] | None = None,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], route_path(scope))
        headers = Headers(scope=scope)
        declared = _declared_length(headers)
        chunked = declared is None and "chunked" in headers.get("transfer-encoding", "").lower()

        def close_after(received: int) -> bool:  # rather than let the server drain the rest
            return chunked or (declared is not None and declared - received > DRAIN_BYTES)

        if declared is not None and declared > limit.max_bytes:
            await _answer(PayloadTooLarge(limit.problem(declared)), scope, receive, send, close_after(0))
            return
        refused = self.refusal(scope) if self.refusal is not None else None
        if refused is not None:
            await _answer(refused, scope, receive, send, close_after(0))
            return

        received, exceeded, started = 0, False, False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _BodyTooLarge(limit.problem(received, complete=False))
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge(limit.problem(received, complete=False))
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # whatever the app answers to a body cut short, the 413 below replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _answer(
                PayloadTooLarge(limit.problem(received, complete=False)), scope, receive, send, close_after(received)
            )


async def _answer(error: RaylineError, scope: Scope, receive: Receive, send: Send, close: bool) -> None:
    response = rayline_error_response(error)
    if close:
        response.headers["Connection"] = "close"
    await response(scope, receive, send)
