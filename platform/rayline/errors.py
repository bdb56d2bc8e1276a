"""The platform's error family. Domain code raises these; ``rayline.api.errors`` maps them to
HTTP once, and the SDK turns the JSON body into ``SdkException``."""

from __future__ import annotations

from typing import Any


class RaylineError(Exception):
    """Base of every error the platform reports to a user. ``message`` says what to do."""

    name = "RaylineError"

    def __init__(self, message: str, additional_data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.additional_data = additional_data


class InvalidInput(RaylineError):
    """The request is wrong: a field, a name, a value. The message names the field and the fix."""

    name = "InvalidInput"


class NotFound(RaylineError):
    name = "NotFound"


class AlreadyExists(RaylineError):
    name = "AlreadyExists"


class Conflict(RaylineError):
    """The request is right but the current state forbids it (e.g. a pipeline still deployed)."""

    name = "Conflict"


class PayloadTooLarge(RaylineError):
    name = "PayloadTooLarge"


class Unauthorized(RaylineError):
    name = "Unauthorized"

    def __init__(self, message: str, scheme: str = "Bearer") -> None:
        super().__init__(message)
        self.scheme = scheme  # what WWW-Authenticate asks for


class Forbidden(RaylineError):
    """A credential that is valid in shape but does not allow this (a signed URL that expired, was
    altered, or is for another object)."""

    name = "AccessDenied"


class PlatformFailure(RaylineError):
    """Rayline itself (or Ray under it) failed; the user's request was fine."""

    name = "PlatformError"


class ExecutionFailed(Conflict):
    """The outputs of an execution that ended in Failed or Error were asked for."""

    name = "ExecutionFailed"


class ExecutionNotFinished(Conflict):
    name = "ExecutionNotFinished"


class Unavailable(RaylineError):
    """The target exists but cannot serve now (disabled, starting, failed, busy); retry later or fix it."""

    name = "Unavailable"

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # sent as Retry-After when the platform can tell


class NotImplementedYet(RaylineError):
    name = "NotImplemented"
