"""The one place where errors become HTTP answers: ``{"message", "name", ...}`` with a status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

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


def error_response(status: int, message: str, name: str, additional_data=None, headers=None) -> JSONResponse:
    body = {"message": message, "name": name}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return JSONResponse(body, status_code=status, headers=headers)


def _status_of(error: errors.RaylineError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path", "form"))
        parts.append(f"{location or 'request'}: {item.get('msg')}")
    return "Invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.RaylineError)
    async def _rayline_error(_: Request, error: errors.RaylineError) -> JSONResponse:
        headers = None
        if isinstance(error, errors.Unauthorized):
            headers = {"WWW-Authenticate": error.scheme}
        elif isinstance(error, errors.Unavailable) and error.retry_after_s is not None:
            headers = {"Retry-After": str(error.retry_after_s)}
        return error_response(_status_of(error), error.message, error.name, error.additional_data, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_message(error), "InvalidInput")

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), "HTTPError", headers=error.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error")
        return error_response(500, f"Rayline failed unexpectedly: {type(error).__name__}: {error}", "InternalError")
