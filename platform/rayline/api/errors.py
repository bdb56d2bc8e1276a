"""The one place where errors become HTTP answers: ``{"message", "name", ...}`` with a status.

An unexpected error is answered with a generic message and an error id, and logged with its
traceback under that id: the caller never gets the exception's text.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rayline import errors

logger = logging.getLogger(__name__)

STATUS = {
    errors.InvalidInput: 400,
    errors.Unauthorized: 401,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.PlatformFailure: 500,
    errors.NotImplementedYet: 501,
    errors.Unavailable: 503,
}

TOO_DEEP = ("The request body is nested too deeply to be read; send JSON nested at most a few hundred "
            "levels deep.")


def error_response(status: int, message: str, name: str, additional_data=None, headers=None,
                   **extra) -> JSONResponse:
    body = {"message": message, "name": name, **extra}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return JSONResponse(body, status_code=status, headers=headers)


def _status_of(error: errors.RaylineError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def rayline_error_response(error: errors.RaylineError) -> JSONResponse:
    headers = None
    if isinstance(error, errors.Unauthorized):
        headers = {"WWW-Authenticate": error.scheme}
    elif isinstance(error, errors.Unavailable) and error.retry_after_s is not None:
        headers = {"Retry-After": str(error.retry_after_s)}
    return error_response(_status_of(error), error.message, error.name, error.additional_data, headers)


def internal_error_response(scope: Scope, error: BaseException | None = None, detail: str | None = None,
                            additional_data=None) -> JSONResponse:
    """500 with an error id; the traceback (or ``detail``) is logged under that id, never sent."""
    error_id = secrets.token_hex(8)
    logger.error("error id %s: %s %s failed%s", error_id, scope.get("method"), scope.get("path"),
                 f": {detail}" if detail else "", exc_info=error)
    return error_response(500, f"Rayline failed unexpectedly; the platform's logs hold the details under "
                               f"error id {error_id}.", "InternalError", additional_data, error_id=error_id)


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
            return internal_error_response(request.scope, detail=error.message,
                                           additional_data=error.additional_data)
        return rayline_error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_message(error), "InvalidInput")

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400 and error.__cause__ is not None:  # FastAPI could not parse the body
            message = TOO_DEEP if isinstance(error.__cause__, RecursionError) else \
                "The request body could not be read: send a JSON object with 'Content-Type: application/json'."
            return error_response(400, message, "InvalidInput")
        return error_response(error.status_code, str(error.detail), "HTTPError", headers=error.headers)

    @app.exception_handler(RecursionError)
    async def _too_deep(_: Request, error: RecursionError) -> JSONResponse:
        # Deeply nested input reaching a parser or an encoder that recurses (JSON form fields...).
        return error_response(400, TOO_DEEP, "InvalidInput")
