"""The one place where errors become HTTP answers: ``{"message", "name", ...}`` with a status,
and where the OpenAPI document learns them (``error_responses``).

An unexpected error is answered with a generic message and an error id, and logged with its
traceback under that id: the caller never gets the exception's text.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rayline import errors
from rayline.api.http_errors import error_response, rayline_error_response
from rayline.api.schemas import ErrorPublic

logger = logging.getLogger(__name__)

# What each status means here, for the OpenAPI document. Every answer >= 400 is an ErrorPublic.
ERROR_DESCRIPTIONS = {
    400: "A bad field, parameter or body: the message names it and the fix.",
    401: "Missing or invalid token (``WWW-Authenticate`` says which scheme).",
    403: "A signed data store URL that expired, was altered, or is for another object.",
    404: "No such resource.",
    409: "A duplicate, or the resource's state forbids it now.",
    413: "The body is over its limit (1 MiB for JSON, RAYLINE_MAX_UPLOAD_BYTES for pipelines, "
    "RAYLINE_MAX_FILE_BYTES for inputs).",
    415: "The body is not JSON: send it with 'Content-Type: application/json'.",
    500: "An unexpected failure: a generic message and an ``error_id`` the platform's logs hold.",
    501: "A craft-ai-sdk feature Rayline does not offer.",
    503: "The deployment cannot take the call now (disabled, starting, busy); ``Retry-After`` when known.",
    504: "The execution ran past its deployment's execution_timeout_s.",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "Bearer, or EndpointToken for endpoints.", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "Seconds to wait, when the platform can tell.", "schema": {"type": "string"}}},
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict]:
    """``responses=`` for a route: each status with ErrorPublic (``descriptions``: ``s409=...``
    to say what a status means on this route)."""
    return {
        status: {
            "model": ErrorPublic,
            "description": descriptions.get(f"s{status}", ERROR_DESCRIPTIONS[status]),
            **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
        }
        for status in statuses
    }


TOO_DEEP = "The request body is nested too deeply to be read; send JSON nested at most a few hundred levels deep."


def internal_error_response(
    scope: Scope, error: BaseException | None = None, detail: str | None = None, additional_data=None
) -> JSONResponse:
    """500 with an error id; the traceback (or ``detail``) is logged under that id, never sent."""
    error_id = secrets.token_hex(8)
    logger.error(
        "error id %s: %s %s failed%s",
        error_id,
        scope.get("method"),
        scope.get("path"),
        f": {detail}" if detail else "",
        exc_info=error,
    )
    return error_response(
        500,
        f"Rayline failed unexpectedly; the platform's logs hold the details under error id {error_id}.",
        "InternalError",
        additional_data,
        error_id=error_id,
    )


def _routes(app: FastAPI) -> list[tuple[str, set[str], bool]]:
    """``(path template, methods, documented)`` of every route, the included routers' too."""
    try:  # FastAPI 0.150+ keeps included routers whole; this walks into them
        from fastapi.routing import iter_route_contexts

        routes: Any = iter_route_contexts(app.routes)
    except ImportError:  # older ones copy their routes into the app's
        routes = app.routes
    return [
        (route.path, set(route.methods), getattr(route, "include_in_schema", True))
        for route in routes
        if getattr(route, "path", None) and getattr(route, "methods", None)
    ]


def _allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI document lists at this path (Starlette's 405 names only the first
    route's); for a path it does not list (the 501s), the methods its routes take. A route that
    answers the other methods itself (405 from /endpoints/<path>, after the token) is not one."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    path = path[len(root) :] if root and path.startswith(root) else path
    matching = [
        (methods, documented)
        for template, methods, documented in _routes(request.app)
        if compile_path(template)[0].match(path)
    ]
    documented = [methods for methods, is_documented in matching if is_documented]
    return sorted(set().union(*(documented or [methods for methods, _ in matching])))


def _not_json(error: RequestValidationError) -> bool:
    """A JSON body that arrived with another content type: FastAPI hands the model its bytes."""
    return any(
        tuple(item.get("loc", ())) == ("body",) and isinstance(item.get("input"), bytes) for item in error.errors()
    )


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path", "form"))
        parts.append(f"{location or 'request'}: {item.get('msg')}")
    return "Invalid request: " + "; ".join(parts)


class UnexpectedErrors:
    """Pure ASGI, outermost: an exception no handler answered becomes ``internal_error_response``
    here, so that it is logged once, with its id, and not raised on to the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as error:
            if started:  # too late for an answer: the server ends the connection
                raise
            await internal_error_response(scope, error)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.RaylineError)
    async def _rayline_error(request: Request, error: errors.RaylineError) -> JSONResponse:
        if isinstance(error, errors.PlatformFailure) and request.url.path.startswith("/endpoints/"):
            # An endpoint's caller holds only its endpoint token: the platform's own failures
            # (Ray's errors among them) stay in the logs.
            return internal_error_response(request.scope, detail=error.message, additional_data=error.additional_data)
        return rayline_error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        if _not_json(error):
            return error_response(415, ERROR_DESCRIPTIONS[415], "UnsupportedMediaType")
        return error_response(400, _validation_message(error), "InvalidInput")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400 and error.__cause__ is not None:  # FastAPI could not parse the body
            message = (
                TOO_DEEP
                if isinstance(error.__cause__, RecursionError)
                else "The request body could not be read: send a JSON object with 'Content-Type: application/json'."
            )
            return error_response(400, message, "InvalidInput")
        if error.status_code == 405:
            allowed = _allowed_methods(request) or sorted((error.headers or {}).get("Allow", "").split(", "))
            return error_response(
                405,
                f"{request.method} is not allowed here; use {', '.join(allowed)}.",
                "MethodNotAllowed",
                headers={**(error.headers or {}), "Allow": ", ".join(allowed)},
            )
        return error_response(error.status_code, str(error.detail), "HTTPError", headers=error.headers)

    @app.exception_handler(RecursionError)
    async def _too_deep(_: Request, error: RecursionError) -> JSONResponse:
        # Deeply nested input reaching a parser or an encoder that recurses (JSON form fields...).
        return error_response(400, TOO_DEEP, "InvalidInput")
