"""Errors and outcomes as HTTP answers, for the API and the warm pods alike (Starlette only: a
pod serves its endpoint itself). Every answer >= 400 is ``{"message", "name", ...}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse, Response

from rayline import errors
from rayline.api.http_io import output_response
from rayline.domain.deployments import failure_for_caller
from rayline.domain.outcomes import Busy, Ended, Outcome, Refused

STATUS = {
    errors.InvalidInput: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.PlatformFailure: 500,
    errors.NotImplementedYet: 501,
    errors.Unavailable: 503,
}


def error_response(
    status: int, message: str, name: str, additional_data: Any = None, headers: Mapping[str, str] | None = None, **extra
) -> JSONResponse:
    body = {"message": message, "name": name, **extra}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return JSONResponse(body, status_code=status, headers=headers)


def status_of(error: errors.RaylineError) -> int:
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
    return error_response(status_of(error), error.message, error.name, error.additional_data, headers)


def outcome_response(outcome: Outcome) -> Response:
    """A call's answer: its output (200), or why there is none. A failed execution is a 500 named
    ExecutionFailed (504 ExecutionTimedOut past its timeout) with its execution id, so that its
    caller can read its logs; asking for the outputs of one afterwards is a 409 (ExecutionFailed)."""
    if isinstance(outcome, Refused):
        return rayline_error_response(errors.InvalidInput(outcome.message))
    if isinstance(outcome, Busy):
        return rayline_error_response(errors.Unavailable(outcome.message, retry_after_s=outcome.retry_after_s))
    assert isinstance(outcome, Ended)
    if outcome.succeeded:
        return output_response(outcome.execution_id, outcome.output)
    return error_response(
        504 if outcome.timed_out else 500,
        failure_for_caller(outcome.execution_id, outcome.status, outcome.error)
        or f"Execution {outcome.execution_id} ended {outcome.status}; its logs say why.",
        "ExecutionTimedOut" if outcome.timed_out else "ExecutionFailed",
        execution_id=outcome.execution_id,
    )
